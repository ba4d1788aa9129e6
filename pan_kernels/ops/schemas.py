"""The operator schemas of every compiled backend, written once.

Each public op has a forward and a backward operator per compiled backend, named
`pan_kernels::<op>_<backend>` and `pan_kernels::<op>_<backend>_backward`. The Triton backend defines them from
Python (`torch.library.custom_op`); the CUDA extension defines the same schemas in C++ (`csrc/`), and a test
checks that the two agree. Fake implementations and autograd are registered in Python for both
(`pan_kernels.ops.registry`).

Saved statistics of hard_attention_marginal (`stats`, float32 [B, 2*HW + A]): log_softmax_ij(s) (HW values),
then logsumexp_a(Wc x_ij + bc) (HW values), then log p(a) in float32 (A values). Those of
hard_attention_marginal_multilabel (float32 [B, HW + 2A]): log_softmax_ij(s), then log p_a, then log(1 - p_a).
"""

from __future__ import annotations

SCHEMAS = {
    "progressive_attention": (
        "(Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2, Tensor? bias2)"
        " -> (Tensor, Tensor)"
    ),
    "progressive_attention_backward": (
        "(Tensor grad_out, Tensor grad_alpha, Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1,"
        " Tensor weight2, Tensor alpha) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
    "attention_scores": (
        "(Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2, Tensor? bias2) -> Tensor"
    ),
    "attention_scores_backward": (
        "(Tensor grad_scores, Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2)"
        " -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
    "hard_attention_marginal": (
        "(Tensor x, Tensor scores, Tensor cls_weight, Tensor? cls_bias) -> (Tensor, Tensor, Tensor)"
    ),
    "hard_attention_marginal_backward": (
        "(Tensor grad_log_p, Tensor grad_alpha, Tensor x, Tensor cls_weight, Tensor? cls_bias, Tensor stats)"
        " -> (Tensor, Tensor, Tensor, Tensor)"
    ),
    "hard_attention_marginal_multilabel": (
        "(Tensor x, Tensor scores, Tensor cls_weight, Tensor? cls_bias) -> (Tensor, Tensor, Tensor, Tensor)"
    ),
    "hard_attention_marginal_multilabel_backward": (
        "(Tensor grad_log_p, Tensor grad_log_1mp, Tensor grad_alpha, Tensor x, Tensor cls_weight, Tensor? cls_bias,"
        " Tensor stats) -> (Tensor, Tensor, Tensor, Tensor)"
    ),
    "soft_attention_pool": "(Tensor x, Tensor scores) -> (Tensor, Tensor)",
    "soft_attention_pool_backward": (
        "(Tensor grad_f_att, Tensor grad_alpha, Tensor x, Tensor alpha) -> (Tensor, Tensor)"
    ),
}

PUBLIC_OPS = ("progressive_attention", "attention_scores", "hard_attention_marginal", "soft_attention_pool",
              "hard_attention_marginal_multilabel")
COMPILED_BACKENDS = ("triton", "cuda")
# The ops each compiled backend defines (all of them, for both).
BACKEND_OPS = {"triton": PUBLIC_OPS, "cuda": PUBLIC_OPS}


def op_name(op: str, backend: str, backward: bool = False) -> str:
    """Unqualified operator name, e.g. op_name("attention_scores", "cuda", True) -> "attention_scores_cuda_backward"."""
    return f"{op}_{backend}" + ("_backward" if backward else "")
