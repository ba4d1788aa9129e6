"""The optimiser of a run: RMSprop (the paper's) or Adam."""

from __future__ import annotations

import torch
from torch import nn

from pan.train.config import OPTIMIZERS, TrainConfig

__all__ = ["build_optimizer"]


def build_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """``RMSprop(lr, alpha=rmsprop_alpha, eps=rmsprop_eps)`` or ``Adam(lr, betas=(0.9, 0.999), eps=1e-8)``."""
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.rmsprop_alpha, eps=config.rmsprop_eps)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
