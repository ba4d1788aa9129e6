"""Defines the `pan_kernels::<op>_triton[_backward]` operators from the Triton launchers."""

from __future__ import annotations

from pan_kernels.ops import attention_mlp_triton as mlp
from pan_kernels.ops import multilabel_marginal_triton as multilabel
from pan_kernels.ops import spatial_attention_triton as spatial
from pan_kernels.ops.registry import register_backend


def progressive_attention(x, query_bias, weight1, bias1, weight2, bias2):
    return mlp.attention_mlp_fwd(x, query_bias, weight1, bias1, weight2, bias2, gate=True)


def progressive_attention_backward(grad_out, grad_alpha, x, query_bias, weight1, bias1, weight2, alpha):
    return mlp.attention_mlp_bwd(grad_out, grad_alpha, x, query_bias, weight1, bias1, weight2, alpha, gate=True)


def attention_scores(x, query_bias, weight1, bias1, weight2, bias2):
    return mlp.attention_mlp_fwd(x, query_bias, weight1, bias1, weight2, bias2, gate=False)[1]


def attention_scores_backward(grad_scores, x, query_bias, weight1, bias1, weight2):
    return mlp.attention_mlp_bwd(None, grad_scores, x, query_bias, weight1, bias1, weight2, None, gate=False)


IMPLS = {
    "progressive_attention": progressive_attention,
    "progressive_attention_backward": progressive_attention_backward,
    "attention_scores": attention_scores,
    "attention_scores_backward": attention_scores_backward,
    "hard_attention_marginal": spatial.hard_attention_marginal_fwd,
    "hard_attention_marginal_backward": spatial.hard_attention_marginal_bwd,
    "soft_attention_pool": spatial.soft_attention_pool_fwd,
    "soft_attention_pool_backward": spatial.soft_attention_pool_bwd,
    "hard_attention_marginal_multilabel": multilabel.hard_attention_marginal_multilabel_fwd,
    "hard_attention_marginal_multilabel_backward": multilabel.hard_attention_marginal_multilabel_bwd,
}

register_backend("triton", IMPLS)
