"""Optional training terms added to the answer's NLL (the paper's recipe uses none)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gate_sparsity"]


def gate_sparsity(gates: Sequence[Tensor]) -> Tensor:
    """Sum over the sigmoid gate maps alpha_l [B, h, w] of mean_{b,i,j} alpha_l: an L1 pull that closes each gate
    wherever the answer does not need it open. The batch-norm after every gate makes a gate's overall level free
    for the loss, so what the term changes is the contrast: most of all on the background, where the features are 0
    and the NLL cannot train the gate at all. Float32 scalar; 0 for no gates. (A scale-free mean/max form was
    measured too: docs/training-notes.md §8.)"""
    total = torch.zeros((), dtype=torch.float32, device=gates[0].device if gates else None)
    for alpha in gates:
        total = total + alpha.float().mean()
    return total
