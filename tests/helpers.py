"""Shared test helpers: random inputs and shape tables for each op, dtype tolerances, layouts, a verbose comparison,
and opcheck samples — one copy for the Triton and the CUDA backend tests."""

from __future__ import annotations

import pytest
import torch

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# B, C, H, W, Hd, k, biases, layout of x. Hd > 64 and C > 32 span several kernel tiles.
MLP_CASES = [
    pytest.param(2, 5, 7, 5, 19, 3, True, "contiguous", id="B2-C5-7x5-Hd19-k3"),
    pytest.param(1, 3, 1, 1, 17, 1, True, "contiguous", id="B1-C3-1x1-Hd17-k1"),
    pytest.param(2, 20, 6, 7, 33, 5, False, "channels_last", id="B2-C20-6x7-Hd33-k5-nobias-cl"),
    pytest.param(3, 4, 5, 4, 16, 3, True, "strided", id="B3-C4-5x4-Hd16-k3-strided"),
    pytest.param(1, 2, 4, 6, 5, 7, True, "contiguous", id="B1-C2-4x6-Hd5-k7"),
    pytest.param(2, 40, 13, 17, 70, 3, True, "channels_last", id="B2-C40-13x17-Hd70-k3-cl"),
    pytest.param(1, 33, 9, 11, 65, 7, False, "contiguous", id="B1-C33-9x11-Hd65-k7-nobias"),
    pytest.param(0, 4, 5, 5, 8, 3, True, "contiguous", id="B0"),
]

# B, C, H, W, A, bias, layout of x
HEAD_CASES = [
    pytest.param(2, 5, 7, 5, 19, True, "contiguous", id="B2-C5-7x5-A19"),
    pytest.param(1, 3, 1, 1, 5, True, "contiguous", id="B1-C3-1x1-A5"),
    pytest.param(2, 70, 6, 7, 3, False, "channels_last", id="B2-C70-6x7-A3-nobias-cl"),
    pytest.param(3, 4, 9, 8, 66, True, "strided", id="B3-C4-9x8-A66-strided"),
    pytest.param(2, 40, 14, 14, 130, True, "contiguous", id="B2-C40-14x14-A130"),
    pytest.param(0, 4, 5, 5, 8, True, "contiguous", id="B0"),
]


def tolerance(dtype: torch.dtype, tf32: bool) -> tuple[float, float]:
    """(atol, rtol) against float64, scaled by max(|ref|, 1): TF32 keeps 10 mantissa bits, exact fp32 23."""
    if dtype == torch.float32:
        return (2e-2, 2e-2) if tf32 else (2e-4, 2e-4)
    return {torch.bfloat16: (6e-2, 6e-2), torch.float16: (1e-2, 1e-2)}[dtype]


def fp32_tf32_active(device) -> bool:
    """Whether fp32 kernels on `device` multiply on TF32 tensor cores (a GPU with cudnn.allow_tf32, the default);
    the Triton interpreter and the CPU compute exact fp32."""
    return torch.device(device).type == "cuda" and torch.backends.cudnn.allow_tf32


def fp32_pair_tol(device) -> dict:
    """atol/rtol for torch.testing.assert_close between two fp32 computations of the same op on `device` by
    different backends (or eager vs compiled): exact fp32 agrees to ~1e-6 relative, TF32 (10 mantissa bits) only to
    ~1e-3, so the bound follows the precision actually used."""
    return dict(atol=5e-3, rtol=5e-3) if fp32_tf32_active(device) else dict(atol=1e-4, rtol=1e-4)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: tuple[float, float], name: str,
                 scale: float = 1.0) -> None:
    """Compare `actual` (any dtype) to a float64 `expected`; the bound grows with the magnitude of `expected`."""
    atol, rtol = tol
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert not torch.isnan(a).any(), f"{name}: NaN in output (unwritten elements?)"
    if e.numel() == 0:
        return
    ref_scale = max(e.abs().max().item(), 1.0) * scale
    err = (a - e).abs().max().item()
    rel_rmse = ((a - e).norm() / e.norm().clamp_min(1e-12)).item()
    assert err <= (atol + rtol) * ref_scale, (
        f"{name}: max abs err {err:.3e} > tol {(atol + rtol) * ref_scale:.3e} (rel rmse {rel_rmse:.3e}, "
        f"max |ref| {ref_scale:.3e})"
    )


def apply_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x as "contiguous", "channels_last", or "strided" (every other column of a wider NaN buffer: no dense layout)."""
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        wide = torch.full((*x.shape[:3], 2 * x.shape[3]), float("nan"), dtype=x.dtype, device=x.device)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


def leaves(args, dtype, device):
    """Kernel-side copies in `dtype` (requires_grad) and float64 reference copies of the same rounded values."""
    low = [None if t is None else t.to(device=device, dtype=dtype) for t in args]
    ref = [None if t is None else t.detach().cpu().double().requires_grad_() for t in low]
    low = [None if t is None else t.detach().requires_grad_() for t in low]
    return low, ref


def mlp_inputs(B, C, H, W, Hd, k, *, bias1=True, bias2=True, dtype=torch.float64, device="cpu", generator=None):
    """(x, query_bias, weight1, bias1, weight2, bias2) with magnitudes like a trained PAN layer."""
    def r(*shape, std=1.0):
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(device=device, dtype=dtype)

    fan_in = C * k * k
    return (
        r(B, C, H, W), r(B, Hd, std=0.5), r(Hd, C, k, k, std=fan_in**-0.5), r(Hd, std=0.5) if bias1 else None,
        r(Hd, std=Hd**-0.5), r(std=0.5) if bias2 else None,
    )


def head_inputs(B, C, H, W, A, *, bias=True, dtype=torch.float64, device="cpu", generator=None):
    """(x, scores, cls_weight, cls_bias)."""
    def r(*shape, std=1.0):
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(device=device, dtype=dtype)

    return r(B, C, H, W), r(B, H, W, std=2.0), r(A, C, std=C**-0.5), r(A, std=0.5) if bias else None


def opcheck_samples(op: str, device):
    """Forward-operator arguments for torch.library.opcheck: with and without biases, requires_grad, channels_last."""
    if op in ("progressive_attention", "attention_scores"):
        base = [mlp_inputs(2, 3, 5, 4, 16, 3), mlp_inputs(1, 5, 3, 3, 7, 1, bias1=False, bias2=False)]
    elif op in ("hard_attention_marginal", "hard_attention_marginal_multilabel"):
        base = [head_inputs(2, 3, 5, 4, 6), head_inputs(1, 4, 3, 3, 5, bias=False)]
    else:
        base = [head_inputs(2, 3, 5, 4, 6)[:2]]
    for args in base:
        for requires_grad in (False, True):
            for channels_last in (False, True):
                t = [None if a is None else a.to(device, torch.float32) for a in args]
                if channels_last:
                    t[0] = t[0].contiguous(memory_format=torch.channels_last)
                yield [None if a is None else a.detach().requires_grad_(requires_grad) for a in t]


def backward_args(op: str, a, outs) -> tuple:
    """Arguments of the backward operator for forward arguments `a` and forward outputs `outs`."""
    g = [torch.randn_like(o) for o in outs]
    if op == "progressive_attention":
        return (g[0], g[1], *a[:5], outs[1])
    if op == "attention_scores":
        return (g[0], *a[:5])
    if op == "hard_attention_marginal":
        return (g[0], g[1], a[0], a[2], a[3], outs[2])
    if op == "hard_attention_marginal_multilabel":
        return (g[0], g[1], g[2], a[0], a[2], a[3], outs[3])
    return (g[0], g[1], a[0], outs[1])


NAN_OPS = ["progressive_attention", "hard_attention_marginal", "soft_attention_pool",
           "hard_attention_marginal_multilabel"]


def nan_case(op: str):
    """(float64 arguments of `op` with one NaN planted, call(args, backend=...) -> the output NaN must reach)."""
    import pan_kernels

    if op == "progressive_attention":
        args = list(mlp_inputs(2, 3, 6, 6, 16, 3))
        args[0][1, 2, 3, 3] = float("nan")
        return args, lambda a, **kw: pan_kernels.progressive_attention(*a, **kw)[1]
    args = list(head_inputs(2, 3, 4, 4, 5))[: 2 if op == "soft_attention_pool" else 4]
    args[1][1, 0, 2] = float("nan")
    return args, lambda a, **kw: getattr(pan_kernels, op)(*a, **kw)[0]
