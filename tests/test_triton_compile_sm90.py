"""Every Triton kernel compiles for the H100 (sm_90) — the interpreter accepts code the GPU compiler rejects —
and every kernel that multiplies matrices uses tensor-core mma in its PTX."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_all_kernels_compile_for_sm90_with_tensor_cores():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "compile_kernels_sm90.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    failed = [r for r in rows if not r["ok"]]
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-3000:])
    kernels = {r["kernel"] for r in rows}
    assert {"_attention_mlp_fwd_kernel", "_attention_mlp_bwd_pre_kernel", "_attention_mlp_bwd_weight_kernel",
            "_attention_mlp_bwd_input_kernel", "_hard_marginal_fwd_kernel", "_hard_marginal_bwd_kernel",
            "_soft_pool_fwd_kernel", "_soft_pool_bwd_pixel_kernel", "_soft_pool_bwd_score_kernel", "_ml_fwd_kernel",
            "_ml_bwd_scores_kernel", "_ml_bwd_dx_kernel", "_ml_bwd_dw_kernel"} <= kernels
    assert {r["dtype"] for r in rows} == {"float32", "bfloat16", "float16"}
    for r in rows:
        if r["uses_dot"]:
            assert r["mma"], r
