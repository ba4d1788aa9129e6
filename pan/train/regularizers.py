"""Optional training terms added to the answer's NLL (the paper's recipe uses none)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["gate_sparsity"]


def gate_sparsity(gates: Sequence[Tensor]) -> Tensor:
    """Sum over the gate maps alpha_l [B, h, w] (sigmoid, in (0, 1)) of the batch mean of mean_ij(alpha_l) /
    max_ij(alpha_l): 1 for a flat map, 1/(h*w) for a single open location; invariant to the map's overall scale,
    which the batch-norm after each gate makes free, so it only asks each gate to close where the answer does not
    need it open. Float32 scalar; 0 for no gates."""
    total = torch.zeros((), dtype=torch.float32, device=gates[0].device if gates else None)
    for alpha in gates:
        flat = alpha.float().flatten(1)
        total = total + (flat.mean(1) / flat.amax(1).clamp_min(1e-12)).mean()
    return total
