"""`pan bench --preflight`: the static sm_90 check of the Triton kernels at registry shapes (no GPU needed).

A few shapes that exercise every finding the review named: NCHW x loads must run the lanes along pixels
(coalesced), the weight-gradient kernel and the VG-14 kernels must not spill, the VG-14 hard-marginal forward and the
soft-pool backward must fill the 132 SMs, and every tl.dot must lower to tensor-core instructions.

Set PAN_PREFLIGHT_PYTHON to another interpreter (e.g. a throwaway venv with triton 3.6, the GPU machine's version:
`python3 -m venv /tmp/venv-t36 && /tmp/venv-t36/bin/pip install triton==3.6.0 torch==2.13.0+cpu`) to also compile
every kernel, every dtype, with that triton (`test_preflight_other_triton`).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _preflight(tmp_path, args, python=sys.executable, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "preflight.json"
    proc = subprocess.run([python, "-m", "pan.bench.preflight", "--quiet", "--json", str(out), *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


def _check_rows(rows, proc):
    failed = [r for r in rows if not r["ok"]]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-3000:], proc.stderr[-3000:])
    for r in rows:
        assert r["registers"] > 0, r
        if r["uses_dot"]:
            assert r["mma_sync"] + r["wgmma"] > 0, r
        for load in r["x_loads"]:
            assert load["coalesced"] and load["lanes_along"] == "pixels", (r["kernel"], r["shape"], load)


def test_preflight_fixed_findings(tmp_path):
    proc, report = _preflight(tmp_path, ["--op", "progressive_attention", "hard_attention_marginal",
                                         "soft_attention_pool", "--shape", "MREF-49", "VG-14"])
    rows = report["rows"]
    _check_rows(rows, proc)
    by = {(r["op"], r["shape"], r["kernel"]): r for r in rows}
    kernels = {r["kernel"] for r in rows}
    assert {"_attention_mlp_fwd_kernel", "_attention_mlp_bwd_pre_kernel", "_attention_mlp_bwd_weight_kernel",
            "_attention_mlp_bwd_input_kernel", "_hard_marginal_fwd_kernel", "_hard_marginal_bwd_kernel",
            "_soft_pool_fwd_kernel", "_soft_pool_bwd_pixel_kernel", "_soft_pool_bwd_score_kernel"} <= kernels
    # every kernel that loads x reports its loads (the analysis found them)
    for r in rows:
        if r["kernel"] not in ("_attention_mlp_bwd_input_kernel", "_soft_pool_bwd_score_kernel"):
            assert r["x_loads"], r
    # no spills anywhere at these shapes (weight gradient: BLOCK_M by shape; VG tiles: 8 warps)
    assert not [(r["kernel"], r["shape"], r["spill_stores"]) for r in rows if r["spill_stores"] or r["spill_loads"]]
    # grids that filled less than the SMs before: hard-marginal forward (64 CTAs) and soft-pool backward (B CTAs)
    assert by[("hard_attention_marginal", "VG-14", "_hard_marginal_fwd_kernel")]["ctas"] >= 132
    assert by[("soft_attention_pool", "VG-14", "_soft_pool_bwd_pixel_kernel")]["ctas"] >= 132
    assert by[("progressive_attention", "MREF-49", "_attention_mlp_bwd_weight_kernel")]["ctas"] >= 132


def test_pan_bench_preflight_cli(tmp_path):
    """`pan bench --preflight` (here on one tiny layer) re-runs itself outside the interpreter and writes JSON."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "-m", "pan.bench", "--preflight", "--op", "soft_attention_pool",
                           "--shape", "MREF-4", "--json", str(out), "--quiet"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert {r["kernel"] for r in rows} == {"_soft_pool_fwd_kernel", "_soft_pool_bwd_pixel_kernel",
                                          "_soft_pool_bwd_score_kernel"}
    assert "_soft_pool_fwd_kernel" in proc.stdout


@pytest.mark.skipif(not os.environ.get("PAN_PREFLIGHT_PYTHON"),
                    reason="set PAN_PREFLIGHT_PYTHON to a python with another triton (the device's 3.6)")
def test_preflight_other_triton(tmp_path):
    """Every kernel, every registry shape and dtype, compiles for sm_90 under another triton (the GPU machine's)."""
    proc, report = _preflight(tmp_path, ["--shape", "all", "--dtype", "float32", "bfloat16", "float16"],
                              python=os.environ["PAN_PREFLIGHT_PYTHON"], timeout=3000)
    failed = [r for r in report["rows"] if not r["ok"]]
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-3000:])
    assert len({r["kernel"] for r in report["rows"]}) == 9
