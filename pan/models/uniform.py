"""The chance baseline: uniform class probabilities and uniform attention (TPR = mean mask area)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pan.models.outputs import ModelOutput


class Uniform(nn.Module):
    """log_probs = log(1/A) everywhere; no attention maps (uniform over the image). Nothing to train."""

    def __init__(self, *, num_queries: int = 10, num_classes: int = 5, backend: str = "auto"):
        super().__init__()
        del num_queries, backend
        self.num_classes = num_classes
        self.attention_geometry = []

    def forward(self, images: Tensor, query: Tensor) -> ModelOutput:
        log_probs = torch.full((images.shape[0], self.num_classes), -math.log(self.num_classes),
                               device=images.device, dtype=images.dtype)
        return ModelOutput(log_probs, ())
