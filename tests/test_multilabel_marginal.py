"""The multi-label hard marginal (paper §4.2): reference against explicit probabilities and gradcheck, the Triton
kernels (interpreter on CPU) against the float64 reference on every output and gradient, and the extreme logits
where p_a rounds to 0 or 1 in float32."""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from pan_kernels import reference
from tests.helpers import DTYPES, HEAD_CASES, apply_layout, assert_close, grad_kind, head_inputs, leaves, tolerance

TF32 = torch.cuda.is_available() and torch.backends.cudnn.allow_tf32
OUTPUTS = ("log_p", "log_1mp", "alpha")


def _explicit(x, s, wc, bc):
    """p_a = sum_ij alpha_ij sigmoid(Wc x_ij + bc)_a by direct summation (float64)."""
    B, C, H, W = x.shape
    alpha = torch.softmax(s.reshape(B, -1), -1)
    z = torch.einsum("bcp,ac->bpa", x.reshape(B, C, -1), wc) + (0 if bc is None else bc)
    return (alpha[:, :, None] * torch.sigmoid(z)).sum(1), alpha.reshape(B, H, W)


@pytest.mark.parametrize("bias", [True, False])
def test_reference_matches_explicit_probabilities(bias):
    x, s, wc, bc = head_inputs(3, 6, 4, 5, 7, bias=bias)
    log_p, log_1mp, alpha = reference.hard_attention_marginal_multilabel_ref(x, s, wc, bc)
    p, alpha_want = _explicit(x, s, wc, bc)
    torch.testing.assert_close(log_p, p.log())
    torch.testing.assert_close(log_1mp, (1 - p).log())
    torch.testing.assert_close(alpha, alpha_want)


def test_reference_gradcheck():
    x, s, wc, bc = (t.requires_grad_() for t in head_inputs(2, 3, 3, 2, 4))
    f = lambda *a: reference.hard_attention_marginal_multilabel_ref(*a)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, s, wc, bc))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,A,bias,layout", HEAD_CASES)
def test_triton_matches_reference(B, C, H, W, A, bias, layout, dtype, device, poison_empty):
    low, ref = leaves(head_inputs(B, C, H, W, A, bias=bias), dtype, device, TF32)
    outs = pan_kernels.hard_attention_marginal_multilabel(apply_layout(low[0], layout), *low[1:], backend="triton")
    outs_ref = reference.hard_attention_marginal_multilabel_ref(*ref)
    for name, got, want in zip(OUTPUTS, outs, outs_ref):
        assert got.dtype == dtype
        assert_close(got, want, tolerance(dtype, TF32), name)
    grads = [torch.randn(o.shape, dtype=torch.float64) for o in outs_ref]
    torch.autograd.backward(outs, [g.to(device, dtype) for g in grads])
    torch.autograd.backward(outs_ref, grads)
    for name, got, want in zip(("x", "scores", "cls_weight", "cls_bias"), low, ref):
        if want is not None:
            assert_close(got.grad, want.grad, tolerance(dtype, TF32, grad_kind(name)),
                         f"hard_attention_marginal_multilabel: grad of {name}")


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["p-rounds-to-1", "p-rounds-to-0"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_extreme_logits_stay_finite_and_accurate(sign, backend, device):
    """Logits beyond +-36: in float32 p_a rounds to exactly 1 (or 0), yet log(1 - p_a) (or log p_a) is below -30
    and must come out finite, accurate to float32 rounding, with finite gradients."""
    x, s, wc, bc = head_inputs(2, 4, 3, 3, 6)
    x = x.abs() + 3.0
    wc = wc.abs() * 0 + sign * 3.0  # z_ija = sign * 3 * sum_c x_cij + bc: |z| >= 36
    bc = bc * 0.1
    want = reference.hard_attention_marginal_multilabel_ref(x, s, wc, bc)
    dev = device if backend == "triton" else "cpu"
    low = [t.to(dev, torch.float32).requires_grad_() for t in (x, s, wc, bc)]
    got = pan_kernels.hard_attention_marginal_multilabel(*low, backend=backend)
    small = want[1] if sign > 0 else want[0]
    assert small.max() < -25, "the test must reach p within float32 rounding of 1 (or 0)"
    for name, g, w in zip(OUTPUTS, got, want):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g.double().cpu(), w, atol=1e-5, rtol=1e-5)
    (got[0].sum() + got[1].sum()).backward()
    for t in low:
        assert torch.isfinite(t.grad).all()


def test_module_and_loss(device):
    """MultiLabelAttentionHead runs the op; its loss is -sum_a [y log p + (1 - y) log(1 - p)], batch-averaged."""
    head = pan_kernels.MultiLabelAttentionHead(6, 9, backend="torch")
    x, s = torch.randn(3, 6, 4, 4), torch.randn(3, 4, 4)
    log_p, log_1mp, alpha = head(x, s)
    target = torch.rand(3, 9) < 0.3
    p, _ = _explicit(x.double(), s.double(), head.cls_weight.double(), head.cls_bias.double())
    want = torch.nn.functional.binary_cross_entropy(p, target.double(), reduction="sum") / 3
    torch.testing.assert_close(head.loss(log_p, log_1mp, target).double(), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="target must have shape"):
        head.loss(log_p, log_1mp, target[:, :4])
