"""Compile every Triton kernel for the H100 (sm_90) without a GPU, with the launch arguments the launchers produce.

The Triton interpreter accepts code the GPU compiler rejects, so CI also compiles each kernel ahead of time:
the launchers run on small CPU tensors with GPU tile policies, `JITFunction.run` records each launch instead of
running it, and each record is compiled with `triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`.
Prints one JSON line per kernel: name, dtype, whether its PTX uses tensor-core mma, and whether it calls tl.dot.
Run without TRITON_INTERPRET: `python scripts/compile_kernels_sm90.py`.
"""

from __future__ import annotations

import inspect
import json
import os
import sys

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("run without TRITON_INTERPRET: the ahead-of-time compile needs real JIT functions")

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from pan_kernels.ops import _launch  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
TYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
              torch.int32: "i32", torch.int64: "i64"}

launches: list[tuple[JITFunction, tuple, dict, int]] = []


def _record(self, *args, grid, warmup, num_warps=4, **kwargs):
    launches.append((self, args, kwargs, num_warps))


def _signature(kernel: JITFunction, args: tuple, kwargs: dict) -> tuple[dict, dict]:
    values = dict(zip([p.name for p in kernel.params], args))
    values.update(kwargs)
    signature, constexprs = {}, {}
    for p in kernel.params:
        v = values[p.name]
        if p.is_constexpr:
            signature[p.name], constexprs[p.name] = "constexpr", v
        elif isinstance(v, torch.Tensor):
            signature[p.name] = "*" + TYPE_NAMES[v.dtype]
        elif isinstance(v, bool):
            signature[p.name] = "i1"
        elif isinstance(v, int):
            signature[p.name] = "i32" if -(2**31) <= v < 2**31 else "i64"
        elif isinstance(v, float):
            signature[p.name] = "fp32"
        else:
            raise TypeError(f"{kernel.__name__}: cannot type argument {p.name}={v!r}")
    return signature, constexprs


def _calls_dot(fn: JITFunction, seen: frozenset = frozenset()) -> bool:
    """Whether `fn` or any @triton.jit helper it calls (transitively) uses tl.dot."""
    source = inspect.getsource(fn.fn)
    if "tl.dot(" in source:
        return True
    helpers = [f for name, f in fn.fn.__globals__.items()
               if isinstance(f, JITFunction) and f"{name}(" in source and name not in seen]
    return any(_calls_dot(f, seen | {fn.__name__}) for f in helpers)


def _run_launchers(dtype: torch.dtype) -> None:
    from pan_kernels.ops import attention_mlp_triton as mlp
    from pan_kernels.ops import multilabel_marginal_triton as multilabel
    from pan_kernels.ops import spatial_attention_triton as spatial

    g = torch.Generator().manual_seed(0)
    B, C, H, W, Hd, k, A = 2, 32, 9, 9, 32, 3, 5

    def r(*shape):
        return torch.randn(shape, generator=g).to(dtype)

    x, qb, w1, b1, w2, b2 = r(B, C, H, W), r(B, Hd), r(Hd, C, k, k), r(Hd), r(Hd), r()
    for gate in (True, False):
        _, s = mlp.attention_mlp_fwd(x, qb, w1, b1, w2, b2, gate=gate)
        mlp.attention_mlp_bwd(r(B, C, H, W) if gate else None, r(B, H, W), x, qb, w1, b1, w2, s, gate=gate)
    wc, bc = r(A, C), r(A)
    log_p, alpha, stats = spatial.hard_attention_marginal_fwd(x, s, wc, bc)
    spatial.hard_attention_marginal_bwd(r(B, A).float(), r(B, H, W), x, wc, bc, stats.normal_())
    *_, ml_stats = multilabel.hard_attention_marginal_multilabel_fwd(x, s, wc, bc)
    multilabel.hard_attention_marginal_multilabel_bwd(r(B, A).float(), r(B, A).float(), r(B, H, W), x, wc, bc,
                                                      ml_stats.normal_())
    spatial.soft_attention_pool_fwd(x, s)
    spatial.soft_attention_pool_bwd(r(B, C), r(B, H, W), x, alpha)


def main() -> int:
    _launch.on_gpu = lambda x: True  # GPU tile policy, TF32 dots for fp32
    JITFunction.run = _record
    failures = 0
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        launches.clear()
        _run_launchers(dtype)
        seen = set()
        for kernel, args, kwargs, num_warps in launches:
            signature, constexprs = _signature(kernel, args, kwargs)
            key = (kernel.__name__, tuple(sorted(constexprs.items())))
            if key in seen:
                continue
            seen.add(key)
            uses_dot = _calls_dot(kernel)
            row = {"kernel": kernel.__name__, "dtype": str(dtype).removeprefix("torch."), "uses_dot": uses_dot,
                   "constexprs": {k: v for k, v in constexprs.items() if not isinstance(v, bool) or v}}
            try:
                compiled = triton.compile(ASTSource(kernel, signature, constexprs), target=TARGET,
                                          options={"num_warps": num_warps})
                ptx = compiled.asm["ptx"]
                row.update(ok=True, mma="mma" in ptx, wgmma="wgmma" in ptx, cubin_bytes=len(compiled.asm["cubin"]))
                if uses_dot and not row["mma"]:
                    row["ok"] = False
                    row["error"] = "tl.dot did not lower to tensor-core mma"
            except Exception as err:  # noqa: BLE001 — report every kernel, then fail
                row.update(ok=False, error=f"{type(err).__name__}: {err}"[:2000])
            failures += not row["ok"]
            print(json.dumps(row), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
