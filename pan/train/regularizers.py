"""Optional training terms on PAN's sigmoid gates, added to the answer's NLL (the paper's recipe uses none).

Why they exist (docs/training-notes.md §5, §8): where a gate's input features are 0 (the black background of MREF
after the first stage) ``x * alpha`` is 0 whatever alpha is, so the NLL never trains the gate there, and the
batch-norm after every gate makes a gate's overall level free. Attention then spreads over the background, which
TPR counts. Both terms give the gates a reason to close where the answer does not need them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["GATE_TERMS", "gate_sparsity", "gate_focus", "gate_term", "per_gate_weights"]

#: The kinds `gate_term` computes.
GATE_TERMS = ("l1", "focus")


def per_gate_weights(weight: float | Sequence[float], num_gates: int) -> list[float]:
    """One weight per gate: a number applies to every gate; a sequence must have ``num_gates`` entries."""
    if isinstance(weight, (int, float)):
        return [float(weight)] * num_gates
    weights = [float(w) for w in weight]
    if len(weights) != num_gates:
        raise ValueError(f"gate_sparsity has {len(weights)} per-gate weights but the model has {num_gates} gates")
    return weights


def gate_sparsity(gates: Sequence[Tensor], weights: Sequence[float] | None = None) -> Tensor:
    """Sum over the sigmoid gate maps alpha_l [B, h, w] of w_l x mean_{b,i,j} alpha_l (w_l: ``weights``, default
    1 each): an L1 pull that closes each gate
    wherever the answer does not need it open. Since the batch-norm after a gate makes its level free, it can also
    shrink a gate uniformly without changing its contrast (it does, on MREF's first gate: §8). Float32 scalar; 0 for
    no gates. (A scale-free mean/max form was measured too: §8.)"""
    total = torch.zeros((), dtype=torch.float32, device=gates[0].device if gates else None)
    for w, alpha in zip(per_gate_weights(1.0 if weights is None else weights, len(gates)), gates):
        if w:
            total = total + w * alpha.float().mean()
    return total


def gate_focus(gates: Sequence[Tensor], inputs: Sequence[Tensor], weights: Sequence[float] | None = None,
               eps: float = 1e-6) -> Tensor:
    """Sum over gates l of w_l x mean_b [ mean_ij alpha_l / mean_ij (alpha_l * e_l) ], where e_l [B, h, w] is the
    channel L2 norm of the features gate l multiplies ([B, C, h, w]), divided by its mean over the image and detached.

    Per image the ratio is 1 for a flat gate, whatever its level, and 1 / (the alpha-weighted mean of e) in general:
    it falls as the gate moves its mass onto locations whose features are strong (strokes) and off those where they
    are weak or 0 (background). Unlike `gate_sparsity` it is blind to a gate's overall level (which the batch-norm
    after the gate makes free) and rewards contrast only; the NLL decides *which* strong features stay open. No
    masks or labels enter. ``weights`` w_l: default 1 each. Float32 scalar; 0 for no gates."""
    if len(gates) != len(inputs):
        raise ValueError(f"got {len(gates)} gate maps but {len(inputs)} gate inputs")
    total = torch.zeros((), dtype=torch.float32, device=gates[0].device if gates else None)
    for w, alpha, x in zip(per_gate_weights(1.0 if weights is None else weights, len(gates)), gates, inputs):
        if x.shape[0] != alpha.shape[0] or x.shape[2:] != alpha.shape[1:]:
            raise ValueError(f"gate input {tuple(x.shape)} does not match its map {tuple(alpha.shape)}")
        if not w:
            continue
        a = alpha.float().flatten(1)
        e = x.detach().float().norm(dim=1).flatten(1)
        e = e / e.mean(1, keepdim=True).clamp_min(eps)
        total = total + w * (a.mean(1) / (a * e).mean(1).clamp_min(eps)).mean()
    return total


def gate_term(kind: str, gates: Sequence[Tensor], inputs: Sequence[Tensor] = (),
              weights: Sequence[float] | None = None) -> Tensor:
    """`gate_sparsity` ("l1") or `gate_focus` ("focus", needs the gate inputs) of the gate maps, gate l weighted by
    ``weights[l]`` (default 1 each)."""
    if kind == "l1":
        return gate_sparsity(gates, weights)
    if kind == "focus":
        return gate_focus(gates, inputs, weights)
    raise ValueError(f"gate term kind must be one of {', '.join(GATE_TERMS)}, got {kind!r}")
