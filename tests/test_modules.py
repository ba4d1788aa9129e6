"""nn.Module wrappers: shapes, parameters, agreement with the functional ops, every backend."""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from tests.helpers import assert_close, grad_kind, tolerance


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_scores_module_and_heads(backend, device):
    layer = pan_kernels.ProgressiveAttention(6, 16, num_queries=10, gate="none", backend=backend).to(device)
    x, q = torch.randn(2, 6, 4, 4, device=device), torch.randint(0, 10, (2,), device=device)
    same, s = layer(x, q)
    assert same is x and s.shape == (2, 4, 4)
    hard = pan_kernels.HardAttentionHead(6, 5, backend=backend).to(device)
    log_p, alpha = hard(x, s)
    torch.testing.assert_close(torch.logsumexp(log_p, -1), torch.zeros(2, device=device), atol=1e-5, rtol=0)
    torch.testing.assert_close(alpha.sum((1, 2)), torch.ones(2, device=device))
    soft = pan_kernels.SoftAttentionHead(6, 5, backend=backend).to(device)
    log_p, alpha = soft(x, s)
    assert log_p.shape == (2, 5)
    torch.testing.assert_close(torch.logsumexp(log_p, -1), torch.zeros(2, device=device), atol=1e-5, rtol=0)


# ------------------------------------------------------------------- every module against independent eager math


def _eager_scores(x, query, layer):
    """s = w2 . relu(W1 * x + b1 + E[query]) + b2 (conv with zero padding k // 2), without pan_kernels (float64)."""
    w1, b1, w2, b2, emb = (t.double() for t in (layer.weight1, layer.bias1, layer.weight2, layer.bias2,
                                                layer.query_embedding.weight))
    k = w1.shape[-1]
    pre = torch.nn.functional.conv2d(x, w1, b1, padding=k // 2) + emb[query][:, :, None, None]
    return (torch.relu(pre) * w2[None, :, None, None]).sum(1) + b2


def _eager_head(kind, x, s, head):
    """The head's outputs by direct summation of probabilities (float64)."""
    B, C, H, W = x.shape
    wc, bc = head.cls_weight.double(), head.cls_bias.double()
    alpha = torch.softmax(s.reshape(B, H * W), -1)
    if kind == "soft":
        f_att = (x.reshape(B, C, H * W) * alpha[:, None]).sum(-1)
        return torch.log_softmax(f_att @ wc.T + bc, -1), alpha.reshape(B, H, W)
    z = x.reshape(B, C, H * W).transpose(1, 2) @ wc.T + bc  # [B, HW, A]
    if kind == "hard":
        return (alpha[:, :, None] * torch.softmax(z, -1)).sum(1).log(), alpha.reshape(B, H, W)
    p = (alpha[:, :, None] * torch.sigmoid(z)).sum(1)
    return p.log(), (1 - p).log(), alpha.reshape(B, H, W)


def _randomize(module):
    """Every parameter random and non-zero (the default init zeroes bias2, which would hide a dropped bias)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + 0.1)
    return module


@pytest.fixture
def exact_fp32(monkeypatch):
    """fp32 kernels in exact fp32 (no TF32 on a GPU): with random weights a TF32 rounding could flip a ReLU."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _module_tol(backend):
    """(dtype, kind -> (atol, rtol)): float64 through the torch backend agrees to rounding; float32 kernels get the
    exact-fp32 bounds of the kernel tests."""
    if backend == "torch":
        return torch.float64, lambda kind: (1e-10, 1e-10)
    return torch.float32, lambda kind: tolerance(torch.float32, False, kind)


def _check_outputs_and_grads(got, want, leaves_got, leaves_want, tol, what):
    g = torch.Generator().manual_seed(3)
    grads = [torch.randn(w.shape, generator=g, dtype=torch.float64) for w in want]
    for i, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, tol("output"), f"{what} output {i}")
    torch.autograd.backward(got, [t.to(a.device, a.dtype) for t, a in zip(grads, got)])
    torch.autograd.backward(want, grads)
    for (name, a), b in zip(leaves_got, leaves_want):
        assert a.grad is not None and b.grad is not None, f"{what}: no gradient for {name}"
        assert_close(a.grad, b.grad, tol(grad_kind(name)), f"{what}: grad of {name}")


@pytest.mark.parametrize("gate,context", [("sigmoid", 1), ("sigmoid", 0), ("none", 1)])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_attention_module_equals_eager_math(backend, gate, context, device, exact_fp32):
    """Forward and every gradient (x, W1, b1, query embedding, w2, b2) of ProgressiveAttention against the formula,
    on random weights and biases: catches a transposed or flipped kernel, a dropped bias, an unused query."""
    dtype, tol = _module_tol(backend)
    layer = _randomize(pan_kernels.ProgressiveAttention(3, 6, num_queries=4, context=context, gate=gate,
                                                        backend=backend)).to(device, dtype)
    x64 = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    query = torch.tensor([3, 1])
    x = x64.to(device, dtype, copy=True).requires_grad_()
    ref_layer = _randomize(pan_kernels.ProgressiveAttention(3, 6, num_queries=4, context=context)).double()
    x_ref = x64.clone().requires_grad_()
    s_ref = _eager_scores(x_ref, query, ref_layer)
    out, second = layer(x, query.to(device))
    if gate == "none":
        assert out is x
        got, want = (second,), (s_ref,)
    else:
        alpha_ref = torch.sigmoid(s_ref)
        got, want = (out, second), (x_ref * alpha_ref[:, None], alpha_ref)
    names = ("weight1", "bias1", "query_embedding.weight", "weight2", "bias2")
    params = dict(layer.named_parameters())
    ref_params = dict(ref_layer.named_parameters())
    _check_outputs_and_grads(got, want, [("x", x)] + [(n, params[n]) for n in names],
                             [x_ref] + [ref_params[n] for n in names], tol, f"ProgressiveAttention({gate})")


@pytest.mark.parametrize("kind", ["hard", "soft", "multilabel"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_heads_equal_eager_math(backend, kind, device, exact_fp32):
    """Forward and every gradient (x, scores, cls_weight, cls_bias) of each head against the formula, on random
    weights and biases: catches a flipped or dropped bias, a transposed classifier, a softmax over the wrong axis."""
    cls = {"hard": pan_kernels.HardAttentionHead, "soft": pan_kernels.SoftAttentionHead,
           "multilabel": pan_kernels.MultiLabelAttentionHead}[kind]
    dtype, tol = _module_tol(backend)
    head = _randomize(cls(4, 5, backend=backend)).to(device, dtype)
    ref_head = _randomize(cls(4, 5)).double()
    x64, s64 = torch.randn(2, 4, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64) * 2
    x, s = (t.to(device, dtype, copy=True).requires_grad_() for t in (x64, s64))
    x_ref, s_ref = (t.clone().requires_grad_() for t in (x64, s64))
    got, want = head(x, s), _eager_head(kind, x_ref, s_ref, ref_head)
    assert len(got) == len(want)
    _check_outputs_and_grads(got, want, [("x", x), ("scores", s), ("cls_weight", head.cls_weight),
                                         ("cls_bias", head.cls_bias)],
                             [x_ref, s_ref, ref_head.cls_weight, ref_head.cls_bias], tol, f"{kind} head")
