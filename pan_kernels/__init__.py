"""pan_kernels: fused Triton and CUDA kernels for Progressive Attention Networks, as PyTorch autograd ops.

    out, alpha   = pan_kernels.progressive_attention(x, query_bias, weight1, bias1, weight2, bias2, backend="auto")
    scores       = pan_kernels.attention_scores(x, query_bias, weight1, bias1, weight2, bias2, backend="auto")
    log_p, alpha = pan_kernels.hard_attention_marginal(x, scores, cls_weight, cls_bias, backend="auto")
    f_att, alpha = pan_kernels.soft_attention_pool(x, scores, backend="auto")
    log_p, log_1mp, alpha = pan_kernels.hard_attention_marginal_multilabel(x, scores, cls_weight, cls_bias)

The eager reference is `pan_kernels.reference`; every compiled op is registered under torch.ops.pan_kernels.
"""

from pan_kernels import reference
from pan_kernels._backend import BACKENDS, has_cuda_extension, has_triton
from pan_kernels.functional import (
    attention_scores,
    hard_attention_marginal,
    hard_attention_marginal_multilabel,
    progressive_attention,
    soft_attention_pool,
)
from pan_kernels.modules import HardAttentionHead, MultiLabelAttentionHead, ProgressiveAttention, SoftAttentionHead

if has_triton():
    from pan_kernels.ops import triton_backend  # noqa: F401  (defines the pan_kernels::*_triton operators)
if has_cuda_extension():
    from pan_kernels.ops import cuda_backend  # noqa: F401  (attaches fakes and autograd to the C++ operators)

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "HardAttentionHead",
    "MultiLabelAttentionHead",
    "ProgressiveAttention",
    "SoftAttentionHead",
    "attention_scores",
    "hard_attention_marginal",
    "hard_attention_marginal_multilabel",
    "has_cuda_extension",
    "has_triton",
    "progressive_attention",
    "reference",
    "soft_attention_pool",
]
