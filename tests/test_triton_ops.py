"""Every Triton kernel, forward and every gradient, against the float64 eager reference.

Runs in the Triton interpreter on CPU-only machines (CI) and as compiled kernels on a GPU. Outputs and
workspaces are poisoned with NaN before each run, so unwritten elements fail.
"""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from pan_kernels import reference
from tests.helpers import (
    DTYPES,
    HEAD_CASES,
    MLP_CASES,
    NAN_OPS,
    apply_layout,
    assert_close,
    grad_kind,
    head_inputs,
    leaves,
    mlp_inputs,
    nan_case,
    tolerance,
)

# fp32 Triton dots use TF32 on a GPU (torch.backends.cudnn.allow_tf32 defaults to True), exact fp32 on the CPU.
TF32 = torch.cuda.is_available() and torch.backends.cudnn.allow_tf32


def _tol(dtype, kind="output"):
    return tolerance(dtype, TF32, kind)


def _grads(tensors):
    return [None if t is None else t.grad for t in tensors]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,Hd,k,biases,layout", MLP_CASES)
@pytest.mark.parametrize("op", ["progressive_attention", "attention_scores"])
def test_attention_mlp_matches_reference(op, B, C, H, W, Hd, k, biases, layout, dtype, device, poison_empty):
    args = mlp_inputs(B, C, H, W, Hd, k, bias1=biases, bias2=biases)
    low, ref = leaves(args, dtype, device, TF32)
    x_kernel = apply_layout(low[0], layout)
    fn = getattr(pan_kernels, op)
    ref_fn = getattr(reference, op + "_ref")
    outs = fn(x_kernel, *low[1:], backend="triton")
    outs_ref = ref_fn(*ref)
    if op == "attention_scores":
        outs, outs_ref = (outs,), (outs_ref,)
    for name, got, want in zip(("out", "alpha") if len(outs) == 2 else ("scores",), outs, outs_ref):
        assert got.dtype == dtype
        assert_close(got, want, _tol(dtype), f"{op}.{name}")
    if op == "progressive_attention":
        assert outs[0].stride() == torch.empty_like(x_kernel).stride()
    grads_out = [torch.randn(o.shape, dtype=torch.float64) for o in outs_ref]
    torch.autograd.backward(outs, [g.to(device=device, dtype=dtype) for g in grads_out])
    torch.autograd.backward(outs_ref, grads_out)
    names = ("x", "query_bias", "weight1", "bias1", "weight2", "bias2")
    for name, got, want in zip(names, _grads(low), _grads(ref)):
        if want is None:
            continue
        assert_close(got, want, _tol(dtype, grad_kind(name)), f"{op}: grad of {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,A,bias,layout", HEAD_CASES)
def test_hard_attention_marginal_matches_reference(B, C, H, W, A, bias, layout, dtype, device, poison_empty):
    low, ref = leaves(head_inputs(B, C, H, W, A, bias=bias), dtype, device, TF32)
    log_p, alpha = pan_kernels.hard_attention_marginal(apply_layout(low[0], layout), *low[1:], backend="triton")
    log_p_ref, alpha_ref = reference.hard_attention_marginal_ref(*ref)
    assert_close(log_p, log_p_ref, _tol(dtype), "log_p")
    assert_close(alpha, alpha_ref, _tol(dtype), "alpha")
    g_logp, g_alpha = torch.randn(B, A, dtype=torch.float64), torch.randn(B, H, W, dtype=torch.float64)
    torch.autograd.backward((log_p, alpha), (g_logp.to(device, dtype), g_alpha.to(device, dtype)))
    torch.autograd.backward((log_p_ref, alpha_ref), (g_logp, g_alpha))
    for name, got, want in zip(("x", "scores", "cls_weight", "cls_bias"), _grads(low), _grads(ref)):
        if want is not None:
            assert_close(got, want, _tol(dtype, grad_kind(name)), f"hard_attention_marginal: grad of {name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,C,H,W,A,bias,layout", HEAD_CASES)
def test_soft_attention_pool_matches_reference(B, C, H, W, A, bias, layout, dtype, device, poison_empty):
    low, ref = leaves(head_inputs(B, C, H, W, A, bias=bias)[:2], dtype, device, TF32)
    f_att, alpha = pan_kernels.soft_attention_pool(apply_layout(low[0], layout), low[1], backend="triton")
    f_ref, alpha_ref = reference.soft_attention_pool_ref(*ref)
    assert_close(f_att, f_ref, _tol(dtype), "f_att")
    assert_close(alpha, alpha_ref, _tol(dtype), "alpha")
    g_f, g_alpha = torch.randn(B, C, dtype=torch.float64), torch.randn(B, H, W, dtype=torch.float64)
    torch.autograd.backward((f_att, alpha), (g_f.to(device, dtype), g_alpha.to(device, dtype)))
    torch.autograd.backward((f_ref, alpha_ref), (g_f, g_alpha))
    for name, got, want in zip(("x", "scores"), _grads(low), _grads(ref)):
        assert_close(got, want, _tol(dtype, grad_kind(name)), f"soft_attention_pool: grad of {name}")


def test_marginal_error_bounded_by_eager_same_dtype(device):
    """FA's rule for softmax reductions: the bf16 kernel's error is at most a small multiple of eager bf16's."""
    x, s, wc, bc = head_inputs(4, 32, 9, 9, 40)
    want, _ = reference.hard_attention_marginal_ref(x, s, wc, bc)
    low = [t.to(device=device, dtype=torch.bfloat16) for t in (x, s, wc, bc)]
    got, _ = pan_kernels.hard_attention_marginal(*low, backend="triton")
    eager, _ = reference.hard_attention_marginal_ref(*[t.cpu() for t in low])
    err_kernel = (got.double().cpu() - want).abs().max().item()
    err_eager = (eager.double() - want).abs().max().item()
    assert err_kernel <= 2.0 * err_eager + 1e-3, (err_kernel, err_eager)


def test_grad_of_sum_with_expanded_incoming_gradient(device):
    """The gradient of .sum() arrives as an expanded stride-0 tensor; every element of dx must still be right."""
    args = mlp_inputs(2, 4, 5, 6, 16, 3)
    low, ref = leaves(args, torch.float32, device, TF32)
    out, alpha = pan_kernels.progressive_attention(*low, backend="triton")
    (out.sum() + alpha.sum()).backward()
    out_r, alpha_r = reference.progressive_attention_ref(*ref)
    (out_r.sum() + alpha_r.sum()).backward()
    assert_close(low[0].grad, ref[0].grad, _tol(torch.float32, "data_grad"), "progressive_attention: grad of x")


@pytest.mark.parametrize("op", NAN_OPS)
def test_nan_in_gives_nan_out(op, device):
    """NaN propagates exactly where the reference puts it (nothing is silently clamped)."""
    args, call = nan_case(op)
    want = call(args, backend="torch")
    got = call([t.to(device=device, dtype=torch.float32) for t in args], backend="triton")
    assert torch.isnan(want).any()
    assert torch.equal(torch.isnan(got.cpu()), torch.isnan(want))
