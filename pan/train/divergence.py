"""The divergence stop: the first step whose loss or gradient norm is not finite ends the run with a clear error,
and no checkpoint of non-finite weights is ever written."""

from __future__ import annotations

import torch

__all__ = ["FiniteWatch", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Training hit a non-finite loss or gradient norm; the message is one line (where, what was kept, what to
    try). ``summary`` is the run's summary (``stopped == "diverged"``)."""

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary


class FiniteWatch:
    """Device-side record of the first bad step: ``first = [global step, kind]`` (kind bit 1: loss, bit 2: gradient
    norm not finite; -1 while none), updated without a host sync; `bad` reads it (a sync)."""

    def __init__(self, device: torch.device, global_step: int):
        self.counter = torch.tensor(global_step, dtype=torch.int64, device=device)
        self.first = torch.full((2,), -1, dtype=torch.int64, device=device)

    def update(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.counter += 1
        kind = (~torch.isfinite(loss)).long() + 2 * (~torch.isfinite(grad_norm)).long()
        new = (self.first[0] < 0) & (kind > 0)
        self.first.copy_(torch.where(new, torch.stack([self.counter, kind]), self.first))

    def bad(self) -> tuple[int, int] | None:
        """(global step, kind) of the first bad step, or None."""
        step, kind = self.first.tolist()
        return None if step < 0 else (step, kind)


def describe(kind: int) -> str:
    """What was not finite, from a `FiniteWatch` kind (0: the weights)."""
    return {1: "the loss is", 2: "the gradient norm is", 3: "the loss and the gradient norm are"}.get(
        kind, "the weights are") + " not finite (nan or inf)"
