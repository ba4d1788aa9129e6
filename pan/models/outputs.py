"""What every model returns."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class ModelOutput(NamedTuple):
    """log_probs [B, A] (log-probabilities of the attribute); attention: one map per attention layer, shaped as the
    model's `attention_geometry` says (feature-map maps [B, h, w], or image-space maps [B, 100, 100]); gate_inputs:
    for each sigmoid gate (PAN's, leading ``attention``), the features it gated [B, C, h, w] (empty for models
    without gates; what `pan.train.regularizers.gate_focus` weighs the gate against)."""

    log_probs: Tensor
    attention: tuple[Tensor, ...]
    gate_inputs: tuple[Tensor, ...] = ()
