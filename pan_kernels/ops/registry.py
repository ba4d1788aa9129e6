"""torch.library registration shared by the compiled backends: fake (meta) implementations and autograd.

`register_backend("triton", impls)` defines `pan_kernels::<op>_triton[_backward]` from Python launchers with
`torch.library.custom_op` (the registration docs/design.md, Backends, found to pass opcheck and torch.compile under
the Triton interpreter). The CUDA extension defines `pan_kernels::<op>_cuda[_backward]` in C++ with the same schemas;
`register_backend("cuda")` then only attaches the same fakes and autograd.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pan_kernels.ops.schemas import BACKEND_OPS, SCHEMAS, op_name

NAMESPACE = "pan_kernels"

# ----------------------------------------------------------------------------------------------- fakes


def _fake_progressive_attention(x, query_bias, weight1, bias1, weight2, bias2):
    B, _, H, W = x.shape
    return torch.empty_like(x), x.new_empty((B, H, W))


def _fake_attention_scores(x, query_bias, weight1, bias1, weight2, bias2):
    B, _, H, W = x.shape
    return x.new_empty((B, H, W))


def _fake_mlp_grads(x, query_bias, weight1, weight2):
    return (
        torch.empty_like(x), x.new_empty(query_bias.shape), x.new_empty(weight1.shape), x.new_empty(weight1.shape[:1]),
        x.new_empty(weight2.shape), x.new_empty(()),
    )


def _fake_progressive_attention_backward(grad_out, grad_alpha, x, query_bias, weight1, bias1, weight2, alpha):
    return _fake_mlp_grads(x, query_bias, weight1, weight2)


def _fake_attention_scores_backward(grad_scores, x, query_bias, weight1, bias1, weight2):
    return _fake_mlp_grads(x, query_bias, weight1, weight2)


def _fake_hard_attention_marginal(x, scores, cls_weight, cls_bias):
    B, _, H, W = x.shape
    A = cls_weight.shape[0]
    return x.new_empty((B, A)), x.new_empty((B, H, W)), x.new_empty((B, 2 * H * W + A), dtype=torch.float32)


def _fake_hard_attention_marginal_backward(grad_log_p, grad_alpha, x, cls_weight, cls_bias, stats):
    B, _, H, W = x.shape
    return torch.empty_like(x), x.new_empty((B, H, W)), x.new_empty(cls_weight.shape), x.new_empty(cls_weight.shape[:1])


def _fake_hard_attention_marginal_multilabel(x, scores, cls_weight, cls_bias):
    B, _, H, W = x.shape
    A = cls_weight.shape[0]
    stats = x.new_empty((B, H * W + 2 * A), dtype=torch.float32)
    return x.new_empty((B, A)), x.new_empty((B, A)), x.new_empty((B, H, W)), stats


def _fake_hard_attention_marginal_multilabel_backward(grad_log_p, grad_log_1mp, grad_alpha, x, cls_weight, cls_bias,
                                                      stats):
    return _fake_hard_attention_marginal_backward(grad_log_p, grad_alpha, x, cls_weight, cls_bias, stats)


def _fake_soft_attention_pool(x, scores):
    B, C, H, W = x.shape
    return x.new_empty((B, C)), x.new_empty((B, H, W))


def _fake_soft_attention_pool_backward(grad_f_att, grad_alpha, x, alpha):
    B, _, H, W = x.shape
    return torch.empty_like(x), x.new_empty((B, H, W))


FAKES: dict[str, Callable] = {
    "progressive_attention": _fake_progressive_attention,
    "progressive_attention_backward": _fake_progressive_attention_backward,
    "attention_scores": _fake_attention_scores,
    "attention_scores_backward": _fake_attention_scores_backward,
    "hard_attention_marginal": _fake_hard_attention_marginal,
    "hard_attention_marginal_backward": _fake_hard_attention_marginal_backward,
    "hard_attention_marginal_multilabel": _fake_hard_attention_marginal_multilabel,
    "hard_attention_marginal_multilabel_backward": _fake_hard_attention_marginal_multilabel_backward,
    "soft_attention_pool": _fake_soft_attention_pool,
    "soft_attention_pool_backward": _fake_soft_attention_pool_backward,
}

# -------------------------------------------------------------------------------------------- autograd


def _or_zeros(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _mlp_setup_context(ctx, inputs, output):
    x, query_bias, weight1, bias1, weight2, bias2 = inputs
    alpha = output[1] if isinstance(output, tuple) else None
    ctx.save_for_backward(x, query_bias, weight1, bias1, weight2, alpha)
    ctx.has_bias = (bias1 is not None, bias2 is not None)


def _mlp_grads(ctx, grads):
    dx, dqb, dw1, db1, dw2, db2 = grads
    has_b1, has_b2 = ctx.has_bias
    return dx, dqb, dw1, db1 if has_b1 else None, dw2, db2 if has_b2 else None


def _progressive_attention_autograd(bwd: Callable) -> Callable:
    def backward(ctx, grad_out, grad_alpha):
        x, query_bias, weight1, bias1, weight2, alpha = ctx.saved_tensors
        grads = bwd(_or_zeros(grad_out, x), _or_zeros(grad_alpha, alpha), x, query_bias, weight1, bias1, weight2, alpha)
        return _mlp_grads(ctx, grads)

    return backward


def _attention_scores_autograd(bwd: Callable) -> Callable:
    def backward(ctx, grad_scores):
        x, query_bias, weight1, bias1, weight2, _ = ctx.saved_tensors
        return _mlp_grads(ctx, bwd(grad_scores, x, query_bias, weight1, bias1, weight2))

    return backward


def _marginal_setup_context(ctx, inputs, output):
    x, _, cls_weight, cls_bias = inputs
    ctx.save_for_backward(x, cls_weight, cls_bias, output[2])
    ctx.has_bias = cls_bias is not None


def _hard_attention_marginal_autograd(bwd: Callable) -> Callable:
    def backward(ctx, grad_log_p, grad_alpha, _grad_stats):
        x, cls_weight, cls_bias, stats = ctx.saved_tensors
        B, _, H, W = x.shape
        grad_log_p = _or_zeros(grad_log_p, x.new_empty((B, cls_weight.shape[0])))
        grad_alpha = _or_zeros(grad_alpha, x.new_empty((B, H, W)))
        dx, ds, dwc, dbc = bwd(grad_log_p, grad_alpha, x, cls_weight, cls_bias, stats)
        return dx, ds, dwc, dbc if ctx.has_bias else None

    return backward


def _multilabel_setup_context(ctx, inputs, output):
    x, _, cls_weight, cls_bias = inputs
    ctx.save_for_backward(x, cls_weight, cls_bias, output[3])
    ctx.has_bias = cls_bias is not None


def _hard_attention_marginal_multilabel_autograd(bwd: Callable) -> Callable:
    def backward(ctx, grad_log_p, grad_log_1mp, grad_alpha, _grad_stats):
        x, cls_weight, cls_bias, stats = ctx.saved_tensors
        B, _, H, W = x.shape
        like = x.new_empty((B, cls_weight.shape[0]))
        dx, ds, dwc, dbc = bwd(_or_zeros(grad_log_p, like), _or_zeros(grad_log_1mp, like),
                               _or_zeros(grad_alpha, x.new_empty((B, H, W))), x, cls_weight, cls_bias, stats)
        return dx, ds, dwc, dbc if ctx.has_bias else None

    return backward


def _pool_setup_context(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1])


def _soft_attention_pool_autograd(bwd: Callable) -> Callable:
    def backward(ctx, grad_f_att, grad_alpha):
        x, alpha = ctx.saved_tensors
        grad_f_att = _or_zeros(grad_f_att, x.new_empty(x.shape[:2]))
        return bwd(grad_f_att, _or_zeros(grad_alpha, alpha), x, alpha)

    return backward


AUTOGRAD = {
    "progressive_attention": (_progressive_attention_autograd, _mlp_setup_context),
    "attention_scores": (_attention_scores_autograd, _mlp_setup_context),
    "hard_attention_marginal": (_hard_attention_marginal_autograd, _marginal_setup_context),
    "soft_attention_pool": (_soft_attention_pool_autograd, _pool_setup_context),
    "hard_attention_marginal_multilabel": (_hard_attention_marginal_multilabel_autograd, _multilabel_setup_context),
}

# ---------------------------------------------------------------------------------------- registration


def _qualname(name: str) -> str:
    return f"{NAMESPACE}::{name}"


def get_op(op: str, backend: str, backward: bool = False):
    """The registered operator `torch.ops.pan_kernels.<op>_<backend>[_backward]`."""
    return getattr(getattr(torch.ops, NAMESPACE), op_name(op, backend, backward)).default


def register_backend(backend: str, impls: dict[str, Callable] | None = None) -> None:
    """Attach fakes and autograd to the backend's operators; with `impls`, also define the operators from Python.

    impls maps every key of SCHEMAS (e.g. "attention_scores_backward") to a Python implementation.
    """
    for op in BACKEND_OPS[backend]:
        for key, backward in ((op, False), (op + "_backward", True)):
            qualname = _qualname(op_name(op, backend, backward))
            if impls is not None:
                torch.library.custom_op(qualname, impls[key], mutates_args=(), schema=SCHEMAS[key])
            torch.library.register_fake(qualname)(FAKES[key])
        make_backward, setup_context = AUTOGRAD[op]
        torch.library.register_autograd(
            _qualname(op_name(op, backend)), make_backward(get_op(op, backend, backward=True)),
            setup_context=setup_context,
        )
