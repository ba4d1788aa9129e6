"""Eager PyTorch reference of the PAN ops (docs/design.md, The ops): the oracle for every test and the CPU path.

Conv2d/einsum based, differentiable by autograd, works in every floating dtype including float64.
It never depends on compiled code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "attention_scores_ref",
    "progressive_attention_ref",
    "hard_attention_marginal_ref",
    "hard_attention_marginal_multilabel_ref",
    "soft_attention_pool_ref",
]


def attention_scores_ref(
    x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None, weight2: Tensor, bias2: Tensor | None
) -> Tensor:
    """Local-context attention MLP. x [B,C,H,W], query_bias [B,Hd], weight1 [Hd,C,k,k] -> s [B,H,W].

    s_ij = w2 . relu(W1 * F_ij + query_bias + b1) + b2, with W1 * F a k x k conv with zero padding k // 2.
    """
    k = weight1.shape[-1]
    pre = F.conv2d(x, weight1, bias1, padding=k // 2) + query_bias[:, :, None, None]
    s = torch.einsum("bhij,h->bij", torch.relu(pre), weight2)
    return s if bias2 is None else s + bias2


def progressive_attention_ref(
    x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None, weight2: Tensor, bias2: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Sigmoid-gated attention: alpha = sigmoid(s) [B,H,W], out = x * alpha (broadcast over C) [B,C,H,W]."""
    alpha = torch.sigmoid(attention_scores_ref(x, query_bias, weight1, bias1, weight2, bias2))
    return x * alpha[:, None], alpha


def hard_attention_marginal_ref(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Hard attention marginalised over space. x [B,C,H,W], scores [B,H,W], cls_weight [A,C] -> (log_p [B,A], alpha).

    log p(a) = logsumexp_ij( log_softmax_ij(s) + log_softmax_a(Wc x_ij + bc) ); alpha = softmax_ij(s) [B,H,W].
    """
    B, C, H, W = x.shape
    log_alpha = torch.log_softmax(scores.reshape(B, H * W), dim=-1)
    logits = torch.einsum("bcp,ac->bpa", x.reshape(B, C, H * W), cls_weight)
    if cls_bias is not None:
        logits = logits + cls_bias
    log_p = torch.logsumexp(log_alpha[:, :, None] + torch.log_softmax(logits, dim=-1), dim=1)
    return log_p, log_alpha.exp().reshape(B, H, W)


def hard_attention_marginal_multilabel_ref(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Multi-label hard attention marginalised over space (paper §4.2). x [B,C,H,W], scores [B,H,W],
    cls_weight [A,C] -> (log_p [B,A], log_1mp [B,A], alpha [B,H,W]).

    p_a = sum_ij alpha_ij sigmoid(z_ija), z = Wc x_ij + bc; since sum_ij alpha_ij = 1, 1 - p_a = sum_ij alpha_ij
    sigmoid(-z_ija), so both are log-sum-exps of log-sigmoids: log p_a = logsumexp_ij(log alpha_ij + logsigmoid(z)),
    log(1 - p_a) = logsumexp_ij(log alpha_ij + logsigmoid(-z)); neither takes the log of a rounded p.
    """
    B, C, H, W = x.shape
    log_alpha = torch.log_softmax(scores.reshape(B, H * W), dim=-1)[:, :, None]
    logits = torch.einsum("bcp,ac->bpa", x.reshape(B, C, H * W), cls_weight)
    if cls_bias is not None:
        logits = logits + cls_bias
    log_p = torch.logsumexp(log_alpha + F.logsigmoid(logits), dim=1)
    log_1mp = torch.logsumexp(log_alpha + F.logsigmoid(-logits), dim=1)
    return log_p, log_1mp, log_alpha.exp().reshape(B, H, W)


def soft_attention_pool_ref(x: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Soft attention pooling. x [B,C,H,W], scores [B,H,W] -> (f_att [B,C], alpha [B,H,W]).

    alpha = softmax_ij(s); f_att_c = sum_ij alpha_ij x_cij.
    """
    B, C, H, W = x.shape
    alpha = torch.softmax(scores.reshape(B, H * W), dim=-1)
    return torch.einsum("bcp,bp->bc", x.reshape(B, C, H * W), alpha), alpha.reshape(B, H, W)
