"""The full GPU run, for a session with a lent GPU: every stage writes its JSON to --out as soon as it ends.

    python -m pan.bench.gpu_run --out "$OUT" [--build-ext] [--budget-s 470]

Stages, in order of value, each a `python -m pan.bench` subprocess with a timeout of its share of the budget (the
shares below, renormalised over the selected stages) cut to what is left (a stage that hangs or crashes loses only
itself). `--quick` is the short selection scripts/gpu_session.sh uses (see --help):
  0. (--build-ext) build the CUDA extension in place (setup.py build_ext --inplace), so provider "cuda" runs;
  1. ops-fp32:   the whole registry at the paper's shapes, fp32 with TF32, every provider and mode;
  2. train:      PAN[H]+CTX training steps at batch 200 (torch, torch+compile, triton, cuda, CUDA graphs);
  3. opB-ieee:   hard_attention_marginal with TF32 off (label the baseline's precision:
                 docs/design.md, Performance model);
  4. launch:     the launch-bound layers (MREF-10, MREF-4) timed as CUDA-graph replays;
  5. ops-bf16:   the registry in bf16;
  6. trace:      a torch.profiler Chrome trace of one training step.
Then summary.md (pan.bench.summary over every JSON) and log.txt. Files are named <device>_<date>_<stage>.json, at most
8 files (the device tool brings back 8). Copy the JSON files to benchmarks/results/ and the summary into
benchmarks/RESULTS.md.

With the device tool (10 minutes a command), from the repository root:
    python3 -m pan.bench.gpu_run --out "$OUT" --build-ext --budget-s 540
If the extension build or compile times leave later stages skipped (log.txt says so), run them in a second call,
e.g. `--stages opB-ieee launch ops-bf16 trace` (without --build-ext the "cuda" provider is reported as skipped).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def device_slug() -> str:
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name().lower()
    match = re.search(r"(h100|h200|a100|l40s|b200|gb200|rtx ?\d+|a10g?|v100|t4)", name)
    return (match.group(1) if match else name).replace(" ", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pan.bench.gpu_run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (the device tool's $OUT)")
    parser.add_argument("--budget-s", type=float, default=470.0, help="total seconds for every stage (default 470)")
    parser.add_argument("--build-ext", action="store_true", help="build the CUDA extension first")
    parser.add_argument("--stages", nargs="+", default=None,
                        help="subset of: ops-fp32 train opB-ieee launch ops-bf16 trace")
    parser.add_argument("--quick", action="store_true",
                        help="the short selection of scripts/gpu_session.sh: ops-fp32 = progressive_attention and "
                             "hard_attention_marginal at MREF-49 and VG-14 with providers eager, triton, cuda (few "
                             "cold Triton compiles, no torch.compile); train = torch, triton, cuda, cuda+graphs, "
                             "10 steps")
    args = parser.parse_args(argv)

    start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{device_slug()}_{datetime.date.today().isoformat()}"
    log_path = out / "log.txt"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")

    def left() -> float:
        return args.budget_s - (time.monotonic() - start)

    reserve = min(15.0, 0.05 * args.budget_s)

    def run(name: str, cmd: list[str], share: float) -> bool:
        timeout = max(10.0, min(left() - reserve, share * args.budget_s))
        if left() < 2 * reserve:
            print(f"[gpu_run] {name}: skipped, {left():.0f} s left", flush=True)
            return False
        print(f"[gpu_run] {name}: {' '.join(cmd)} (timeout {timeout:.0f} s)", flush=True)
        t0 = time.monotonic()
        with open(log_path, "a") as log:
            log.write(f"\n===== {name}: {' '.join(cmd)}\n")
            log.flush()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        print(f"[gpu_run] {name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        return rc in (0, 1)  # 1 = some row refused or failed: the JSON is still written and worth keeping

    py = sys.executable
    bench = [py, "-m", "pan.bench", "--quiet"]
    stages = args.stages or ["ops-fp32", "train", "opB-ieee", "launch", "ops-bf16", "trace"]
    if args.build_ext:
        ext_env = dict(MAX_JOBS=str(os.cpu_count() or 8), TORCH_CUDA_ARCH_LIST=os.environ.get("TORCH_CUDA_ARCH_LIST",
                                                                                              "9.0"))
        env.update(ext_env)
        run("build-ext", [py, "setup.py", "build_ext", "--inplace"], 0.35)
    plan = {
        "ops-fp32": ([*bench, "--json", str(out / f"{prefix}_ops-fp32.json")], 0.45),
        "train": ([*bench, "--train", "--json", str(out / f"{prefix}_train.json")], 0.25),
        "opB-ieee": ([*bench, "--op", "hard_attention_marginal", "--tf32", "off",
                      "--json", str(out / f"{prefix}_opB-ieee.json")], 0.08),
        "launch": ([*bench, "--shape", "MREF-10", "MREF-4", "--cudagraph",
                    "--json", str(out / f"{prefix}_launch-cudagraph.json")], 0.10),
        "ops-bf16": ([*bench, "--dtype", "bfloat16", "--json", str(out / f"{prefix}_ops-bf16.json")], 0.30),
        "trace": ([*bench, "--profile", str(out / f"{prefix}_trace.json")], 0.05),
    }
    if args.quick:
        plan["ops-fp32"] = ([*plan["ops-fp32"][0], "--op", "progressive_attention", "hard_attention_marginal",
                             "hard_attention_marginal_multilabel", "--shape", "MREF-49", "VG-14",
                             "--provider", "eager", "triton", "cuda"], 0.6)
        plan["train"] = ([*plan["train"][0], "--train-variants", "torch", "triton", "cuda", "cuda+graphs",
                          "--train-steps", "10"], 0.4)
    unknown = [name for name in stages if name not in plan]
    if unknown:
        print(f"[gpu_run] unknown stage {unknown}; choose from {list(plan)}", file=sys.stderr)
        return 2
    # each selected stage gets its share of the budget, the shares renormalised over the selection
    total_share = sum(plan[name][1] for name in stages)
    for name in stages:
        cmd, share = plan[name]
        run(name, cmd, share / total_share)

    results = sorted(p for p in out.glob(f"{prefix}_*.json") if not p.name.endswith("_trace.json"))
    if results:
        from pan.bench.summary import summarize

        (out / "summary.md").write_text(summarize(results))
        print((out / "summary.md").read_text())
    print(f"[gpu_run] done in {time.monotonic() - start:.0f} s; files: {sorted(p.name for p in out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
