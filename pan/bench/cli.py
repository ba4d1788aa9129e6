"""`pan bench` and `python -m pan.bench`: one argument set, one entry point.

    pan bench                                   the registry (GPU: the paper's layers; CPU: small versions)
    pan bench --op progressive_attention --mode fwd+bwd --shape MREF-49 --json r.json --plot r.png
    pan bench --train                           PAN[H]+CTX training steps per backend (images/s, peak memory)
    pan bench --profile trace.json              a torch.profiler Chrome trace of a training step, NVTX ranges
    pan bench --list                            what the registry holds
    pan bench --preflight [--op/--shape/--dtype] static sm_90 check of every Triton kernel at the paper's shapes
                                                (registers, spills, shared memory, CTAs vs 132 SMs, tensor cores,
                                                coalescing of x loads; no GPU needed; benchmarks/preflight.py)

On a CPU the Triton provider runs only when TRITON_INTERPRET=1 is set before Python starts (the interpreter: slow,
about 1.5 minutes for the default CPU selection); otherwise it is reported as skipped, with the reason.

Exit status: 0 when every provider that ran passed its correctness check; 1 when any result was refused as wrong or
a provider failed; 2 for bad arguments. Skipped providers (not available here) do not count as failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pan.cli.argtypes import non_negative_float, non_negative_int, positive_float, positive_int

_DESCRIPTION = __doc__.split("\n\n", 1)[1]

MODES = ("fwd", "bwd", "fwd+bwd")
PROVIDERS = ("eager", "compile", "triton", "cuda")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `pan bench` (kept free of heavy imports so `pan --help` stays fast)."""
    sel = parser.add_argument_group("selection")
    sel.add_argument("--op", nargs="+", default=None, metavar="OP",
                     help="ops: progressive_attention attention_scores hard_attention_marginal soft_attention_pool "
                          "hard_attention_marginal_multilabel (default: all)")
    sel.add_argument("--shape", nargs="+", default=None, metavar="NAME",
                     help="layer names (MREF-49 MREF-23 MREF-10 MREF-4 VG-56 VG-28 VG-14 VG-7) or 'all' "
                          "(default: all on a GPU, one small layer per op on the CPU)")
    sel.add_argument("--mode", nargs="+", default=None, choices=MODES, help="default: all three")
    sel.add_argument("--provider", nargs="+", default=None, choices=PROVIDERS,
                     help="default: all four (unavailable ones are reported as skipped)")
    sel.add_argument("--dtype", nargs="+", default=["float32"], choices=("float32", "bfloat16", "float16"),
                     help="default: float32")
    sel.add_argument("--scale", choices=("full", "small"), default=None,
                     help="full = the paper's layers (GPU default); small = CPU-sized versions (CPU default)")
    sel.add_argument("--small", dest="scale", action="store_const", const="small", help="same as --scale small")
    sel.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: cuda if available")

    how = parser.add_argument_group("measurement")
    how.add_argument("--tf32", choices=("on", "off"), default="on",
                     help="fp32 matmuls and convs on TF32 tensor cores (default on; labelled in every row)")
    how.add_argument("--warmup-ms", type=non_negative_float, default=None,
                     help="warm-up time per timing (GPU 25, CPU 20)")
    how.add_argument("--rep-ms", type=positive_float, default=None, help="timed duration per timing (GPU 100, CPU 200)")
    how.add_argument("--cudagraph", action="store_true",
                     help="time GPU calls as CUDA-graph replays (do_bench_cudagraph): the launch-bound view")
    how.add_argument("--nvtx", action="store_true", help="NVTX/record_function range around every timed call")
    how.add_argument("--compile-mode", default=None,
                     choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                     help="torch.compile mode of the compile provider (default: torch's default)")
    how.add_argument("--no-roofline", action="store_true", help="do not measure copy bandwidth and matmul rate")
    how.add_argument("--cpu-threads", type=positive_int, default=None,
                     help="torch.set_num_threads on the CPU (default: torch's; 1 steadies timings on a busy machine)")
    how.add_argument("--seed", type=non_negative_int, default=0)

    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write header, roofline and rows (and training results) as JSON")
    out.add_argument("--plot", metavar="FILE.png", help="draw the speedups vs eager per shape")
    out.add_argument("--compare", metavar="BASE.json", help="print time ratios against an earlier --json file")
    out.add_argument("--overwrite", action="store_true", help="replace existing --json / --plot / --profile files")
    out.add_argument("--list", action="store_true", help="list ops, shapes, modes and providers, then exit")
    out.add_argument("--preflight", action="store_true",
                     help="compile every Triton kernel for sm_90 at the selected full-scale shapes (default: all) "
                          "and report registers, spills, smem, CTAs/waves, tensor-core instructions and x-load "
                          "coalescing; no GPU needed (benchmarks/preflight.py)")
    out.add_argument("--strict", action="store_true", help="with --preflight: findings (spills, uncoalesced x "
                                                          "loads, grids under 132 CTAs) fail the run")
    out.add_argument("--quiet", action="store_true", help="no progress lines")
    out.add_argument("--verbose", action="store_true", help="print tracebacks of failing providers")

    end = parser.add_argument_group("end to end")
    end.add_argument("--train", action="store_true", help="time PAN[H]+CTX training steps instead of the ops")
    end.add_argument("--train-batch", type=positive_int, default=None,
                     help="batch (default: 200 on a GPU, 8 on the CPU)")
    end.add_argument("--train-steps", type=positive_int, default=None, help="timed steps (default: 20 GPU, 3 CPU)")
    end.add_argument("--train-warmup", type=non_negative_int, default=3, help="untimed steps first (default 3)")
    end.add_argument("--train-variants", nargs="+", default=None, metavar="VARIANT",
                     help="<backend>[+compile|+graphs] for backend torch, triton, cuda (default: torch "
                          "torch+compile torch+graphs triton cuda triton+graphs cuda+graphs)")
    end.add_argument("--profile", metavar="TRACE.json",
                     help="write a torch.profiler Chrome trace of a training step (instead of the ops)")
    end.add_argument("--profile-backend", default="auto", choices=("auto", "torch", "triton", "cuda"),
                     help="pan_kernels backend of the profiled model (default auto)")


def build_parser(prog: str = "pan bench") -> argparse.ArgumentParser:
    from pan.cli.main import OneLineParser

    parser = OneLineParser(prog=prog, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def _device(choice: str):
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available")
    return torch.device(choice)


def run(args: argparse.Namespace) -> int:
    """Run what the arguments ask for; returns the exit status. Global torch settings it changes (TF32 flags, CPU
    threads) are restored afterwards, so an in-process caller (a test) keeps its own."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_num_threads())
    try:
        return _run(args)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_num_threads(saved[2])


def _output_problem(args: argparse.Namespace) -> str | None:
    """A one-line message for an output path that cannot be written (or a --compare file that cannot be read),
    checked before any work; None when they are all usable."""
    from pan.cli.outputs import OutputError, check_file

    try:
        for flag, value, suffix in (("--json", args.json, ".json"), ("--plot", args.plot, ".png"),
                                    ("--profile", args.profile, ".json")):
            if value is not None:
                check_file(value, flag, overwrite=getattr(args, "overwrite", False), suffix=suffix)
    except OutputError as err:
        return str(err)
    if args.plot is not None and (args.train or args.profile or args.list or getattr(args, "preflight", False)):
        return "--plot draws the op timings; it does not apply to --train, --profile, --list or --preflight"
    if args.compare is not None:
        base = Path(args.compare)
        if not base.is_file():
            return f"--compare {base}: " + ("is a directory" if base.is_dir() else "no such file")
        try:
            rows = json.loads(base.read_text())["rows"]
            if not isinstance(rows, list):
                raise TypeError("rows is not a list")
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"--compare {base}: not a `pan bench --json` file ({type(err).__name__}: {err})"
    return None


def _run(args: argparse.Namespace) -> int:
    problem = _output_problem(args)
    if problem is not None:
        print(f"pan bench: error: {problem}", file=sys.stderr)
        return 2
    if getattr(args, "preflight", False):
        from pan.bench.preflight import preflight_main

        json_path = str(Path(args.json).resolve()) if args.json else None  # it may run in a subprocess elsewhere
        return preflight_main(args.op, args.shape or ["all"], args.dtype, json_path, args.strict, args.quiet)
    import torch

    from pan.bench import registry, report

    log = (lambda _msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        device = _device(args.device)
    except ValueError as err:
        print(f"pan bench: error: {err}", file=sys.stderr)
        return 2
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
    torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    header = report.make_header(device)
    print(report.header_line(header))

    if args.list:
        for spec in registry.OPS.values():
            print(f"{spec.name}: modes {', '.join(spec.modes)}; dtypes {', '.join(spec.dtypes)}")
            for full, small in zip(spec.shapes, spec.shapes_for("small"), strict=True):
                print(f"  {full.name:8s} full: {full.label():32s} small: {small.label()}")
        print(f"providers: {', '.join(registry.PROVIDERS)}")
        return 0
    if args.profile:
        return _profile(args, device)
    if args.train:
        return _train(args, device, header, log)

    scale = args.scale or ("full" if device.type == "cuda" else "small")
    try:
        cases = registry.select_cases(args.op, args.shape, args.mode, args.dtype, scale=scale,
                                      cpu_defaults=device.type == "cpu")
    except ValueError as err:
        words = str(err).split()
        flag = f"--{words[1]}: " if len(words) > 1 and words[0] == "unknown" else ""  # "unknown op [...]"
        print(f"pan bench: error: {flag}{err}", file=sys.stderr)
        return 2
    if not cases:
        print("pan bench: error: the selection is empty", file=sys.stderr)
        return 2
    from pan.bench import roofline
    from pan.bench.run import RunOptions, run_cases

    roof = None
    if not args.no_roofline:
        log("measuring the device's copy bandwidth and matmul rate")
        roof = roofline.measure_roofline(device, [registry.DTYPES[d] for d in args.dtype])
    options = RunOptions(providers=tuple(_ordered(args.provider)), warmup_ms=args.warmup_ms, rep_ms=args.rep_ms,
                         cudagraph=args.cudagraph, nvtx=args.nvtx, compile_mode=args.compile_mode, seed=args.seed,
                         verbose=args.verbose)
    rows = [r.to_json() for r in run_cases(cases, device, options, roof, log=log)]
    return _finish(args, header, rows, roof.to_json() if roof else None, None)


def _ordered(providers) -> list[str]:
    """Eager first (the others' error bound and speedups refer to it), then compile, then the kernels."""
    chosen = providers or PROVIDERS
    return [p for p in PROVIDERS if p in chosen]


def _finish(args, header: dict, rows: list[dict], roof: dict | None, train: list[dict] | None) -> int:
    from pan.bench import report

    rows = report.sanitize(rows)
    train = report.sanitize(train) if train is not None else None
    if rows:
        print(report.format_table(rows, roof))
    if train is not None:
        print(report.format_train_table(train))
    if args.compare:
        print("\n".join(report.compare_with_base(rows, args.compare)))
    if args.json:
        report.write_json(args.json, header, rows, roof, train)
        print(f"wrote {args.json}")
    if args.plot and rows:
        from pan.cli.outputs import make_parent

        report.plot_speedups(rows, make_parent(args.plot, "--plot"), title=report.header_line(header))
        print(f"wrote {args.plot}")
    bad = [r for r in rows + (train or []) if r["status"] not in ("ok", "skipped")]
    return 1 if bad else 0


def _train(args, device, header: dict, log) -> int:
    from pan.bench import train

    gpu = device.type == "cuda"
    batch = args.train_batch or (200 if gpu else 8)
    steps = args.train_steps or (20 if gpu else 3)
    variants = args.train_variants or train.DEFAULT_VARIANTS
    unknown = [v for v in variants if v not in train.VARIANTS]
    if unknown:
        print(f"pan bench: error: --train-variants: unknown variant {unknown}; choose from {train.VARIANTS}",
              file=sys.stderr)
        return 2
    try:
        results = train.run_training(device, batch, variants, steps=steps, warmup=args.train_warmup, log=log)
    except RuntimeError as err:
        print(f"pan bench: error: {err}", file=sys.stderr)
        return 2
    return _finish(args, header, [], None, [r.to_json() for r in results])


def _profile(args, device) -> int:
    from pan.bench import train
    from pan.cli.argtypes import backend_problem

    problem = backend_problem(args.profile_backend, device.type)
    if problem is not None:
        print(f"pan bench: error: --profile-backend {args.profile_backend} cannot run on {device.type}: {problem}",
              file=sys.stderr)
        return 2

    from pan.cli.outputs import OutputError, make_parent

    try:
        make_parent(args.profile, "--profile")
    except OutputError as err:
        print(f"pan bench: error: {err}", file=sys.stderr)
        return 2
    batch = args.train_batch or (200 if device.type == "cuda" else 8)
    try:
        summary = train.profile_training_step(args.profile, device, args.profile_backend, batch)
    except RuntimeError as err:
        print(f"pan bench: error: {err}", file=sys.stderr)
        return 2 if "not importable" in str(err) else 1
    print(summary)
    if not Path(args.profile).is_file():
        print(f"pan bench: error: --profile {args.profile}: the profiler wrote no trace there", file=sys.stderr)
        return 1
    print(f"wrote {args.profile} (open it in chrome://tracing or Perfetto)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("python -m pan.bench")
    return run(parser.parse_args(argv))
