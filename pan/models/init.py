"""Glorot-uniform initialisation, as the authors' code (hworang77/PAN, ``libs/theano_util.py``) uses everywhere.

Every weight with a fan-in and a fan-out (convolutions, linear layers, the attention MLP's W1, the query embeddings)
gets U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); the attention MLP's output vector w2 [hidden] counts as a
hidden -> 1 layer; biases start at 0; batch-norm keeps (1, 0). Measured on MREF (docs/training-notes.md), it left
the query-blind plateau sooner than PyTorch's default (Kaiming-uniform a=sqrt(5)) initialisation (§2 there).
"""

from __future__ import annotations

import math

from torch import nn

from pan_kernels import HardAttentionHead, ProgressiveAttention, SoftAttentionHead

__all__ = ["glorot_init_"]


def _uniform_(weight, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(weight, -bound, bound)


def glorot_init_(model: nn.Module) -> nn.Module:
    """Re-initialise ``model``'s convolutions, linear layers and pan_kernels attention layers in place; returns it."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, ProgressiveAttention):
            nn.init.xavier_uniform_(module.weight1)
            nn.init.xavier_uniform_(module.query_embedding.weight)
            _uniform_(module.weight2, module.weight2.numel(), 1)
            nn.init.zeros_(module.bias1)
            nn.init.zeros_(module.bias2)
        elif isinstance(module, (HardAttentionHead, SoftAttentionHead)):
            nn.init.xavier_uniform_(module.cls_weight)
            nn.init.zeros_(module.cls_bias)
    return model
