"""Shared test helpers: random inputs for each op, dtype tolerances, and a verbose comparison."""

from __future__ import annotations

import torch

# (atol, rtol) against a float64 reference, by kernel dtype. fp32 runs exact-fp32 dots on CPU and TF32 on GPU.
TOLERANCES = {
    torch.float32: (2e-4, 2e-4) if not torch.cuda.is_available() else (2e-2, 2e-2),
    torch.bfloat16: (6e-2, 6e-2),
    torch.float16: (1e-2, 1e-2),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, name: str, scale: float = 1.0):
    """Compare `actual` (any dtype) to a float64 `expected`; tolerance grows with the magnitude of `expected`."""
    atol, rtol = TOLERANCES[dtype]
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert not torch.isnan(a).any(), f"{name}: NaN in output (unwritten elements?)"
    ref_scale = max(e.abs().max().item(), 1.0) * scale if e.numel() else 1.0
    err = (a - e).abs().max().item() if e.numel() else 0.0
    rel_rmse = ((a - e).norm() / e.norm().clamp_min(1e-12)).item() if e.numel() else 0.0
    assert err <= atol * ref_scale + rtol * ref_scale, (
        f"{name} ({dtype}): max abs err {err:.3e} > tol {atol * ref_scale + rtol * ref_scale:.3e} "
        f"(rel rmse {rel_rmse:.3e}, max |ref| {ref_scale:.3e})"
    )


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
