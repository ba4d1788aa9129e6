"""The public ops (docs/design.md, The ops), the multi-label marginal included: validation, backend choice,
then the eager reference or a registered kernel op."""

from __future__ import annotations

from torch import Tensor

from pan_kernels import reference
from pan_kernels._backend import resolve_backend
from pan_kernels._validation import check_attention_mlp_args, check_spatial_head_args
from pan_kernels.ops.registry import get_op

__all__ = ["progressive_attention", "attention_scores", "hard_attention_marginal", "soft_attention_pool",
           "hard_attention_marginal_multilabel"]


def progressive_attention(
    x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None, weight2: Tensor, bias2: Tensor | None,
    *, backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Query-conditioned sigmoid attention gate with local context (an intermediate PAN layer).

    Args:
        x: feature map [B, C, H, W].
        query_bias: per-sample hidden bias Wq q [B, Hd].
        weight1: context weights [Hd, C, k, k], k odd in 1..7 (k = 2*delta + 1; zero padding k // 2).
        bias1: [Hd] or None.  weight2: [Hd].  bias2: 0-d tensor or None.
        backend: "auto", "torch", "triton" or "cuda".
    Returns:
        out = x * alpha [B, C, H, W] and alpha = sigmoid(w2 . relu(W1 * F + q + b1) + b2) [B, H, W].
    """
    check_attention_mlp_args(x, query_bias, weight1, bias1, weight2, bias2)
    backend = resolve_backend("progressive_attention", backend, x)
    if backend == "torch":
        return reference.progressive_attention_ref(x, query_bias, weight1, bias1, weight2, bias2)
    return get_op("progressive_attention", backend)(x, query_bias, weight1, bias1, weight2, bias2)


def attention_scores(
    x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None, weight2: Tensor, bias2: Tensor | None,
    *, backend: str = "auto",
) -> Tensor:
    """The pre-activation score s = w2 . relu(W1 * F + q + b1) + b2 [B, H, W]; arguments as progressive_attention."""
    check_attention_mlp_args(x, query_bias, weight1, bias1, weight2, bias2)
    backend = resolve_backend("attention_scores", backend, x)
    if backend == "torch":
        return reference.attention_scores_ref(x, query_bias, weight1, bias1, weight2, bias2)
    return get_op("attention_scores", backend)(x, query_bias, weight1, bias1, weight2, bias2)


def hard_attention_marginal(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None, *, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """Hard attention marginalised over locations (PAN[H], HAN).

    Args:
        x: feature map [B, C, H, W].  scores: attention scores [B, H, W].
        cls_weight: per-location classifier [A, C].  cls_bias: [A] or None.
    Returns:
        log_p [B, A] = logsumexp_ij(log_softmax_ij(s) + log_softmax_a(Wc x_ij + bc)) (rows logsumexp to 0),
        alpha = softmax_ij(s) [B, H, W].
    """
    check_spatial_head_args(x, scores, cls_weight, cls_bias, with_classifier=True)
    backend = resolve_backend("hard_attention_marginal", backend, x)
    if backend == "torch":
        return reference.hard_attention_marginal_ref(x, scores, cls_weight, cls_bias)
    log_p, alpha, _ = get_op("hard_attention_marginal", backend)(x, scores, cls_weight, cls_bias)
    return log_p, alpha


def hard_attention_marginal_multilabel(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None, *, backend: str = "auto"
) -> tuple[Tensor, Tensor, Tensor]:
    """Multi-label hard attention marginalised over locations (the Visual Genome PAN, paper §4.2).

    Args:
        x: feature map [B, C, H, W].  scores: attention scores [B, H, W].
        cls_weight: per-location attribute classifier [A, C].  cls_bias: [A] or None.
    Returns:
        log_p [B, A] = log sum_ij alpha_ij sigmoid(Wc x_ij + bc)_a, log_1mp [B, A] = log(1 - p_a), both computed as
        log-sum-exps of log-sigmoids (finite and accurate where p_a rounds to 0 or 1), and alpha = softmax_ij(s)
        [B, H, W]. Train on -sum_a [y_a log_p_a + (1 - y_a) log_1mp_a].
    """
    check_spatial_head_args(x, scores, cls_weight, cls_bias, with_classifier=True)
    backend = resolve_backend("hard_attention_marginal_multilabel", backend, x)
    if backend == "torch":
        return reference.hard_attention_marginal_multilabel_ref(x, scores, cls_weight, cls_bias)
    log_p, log_1mp, alpha, _ = get_op("hard_attention_marginal_multilabel", backend)(x, scores, cls_weight, cls_bias)
    return log_p, log_1mp, alpha


def soft_attention_pool(x: Tensor, scores: Tensor, *, backend: str = "auto") -> tuple[Tensor, Tensor]:
    """Soft attention pooling (PAN[S], SAN): x [B, C, H, W], scores [B, H, W] ->
    (f_att = sum_ij alpha_ij x_ij [B, C], alpha = softmax_ij(s) [B, H, W])."""
    check_spatial_head_args(x, scores, with_classifier=False)
    backend = resolve_backend("soft_attention_pool", backend, x)
    if backend == "torch":
        return reference.soft_attention_pool_ref(x, scores)
    return get_op("soft_attention_pool", backend)(x, scores)
