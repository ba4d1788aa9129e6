"""The paper's learning-rate schedule: constant, then x `decay_factor` after epoch `decay_start` and every
`decay_every` epochs after that. A pure function of the epoch, so it does not depend on `max_epochs` or on where a
run was resumed."""

from __future__ import annotations

__all__ = ["lr_at_epoch", "num_decays"]


def num_decays(epoch: int, decay_start: int = 50, decay_every: int = 30) -> int:
    """How many decays apply while training epoch ``epoch`` (1-based).

    Epochs ``1..decay_start`` use none; ``decay_start+1 .. decay_start+decay_every`` one; the next
    ``decay_every`` epochs two, and so on (defaults: epochs 1-50 at lr, 51-80 at 0.9 lr, 81-110 at 0.81 lr, ...).
    """
    if epoch < 1:
        raise ValueError(f"epochs are numbered from 1, got {epoch}")
    if epoch <= decay_start:
        return 0
    return (epoch - decay_start - 1) // decay_every + 1


def lr_at_epoch(epoch: int, lr: float, decay_start: int = 50, decay_every: int = 30,
                decay_factor: float = 0.9) -> float:
    """Learning rate of epoch ``epoch`` (1-based): ``lr * decay_factor ** num_decays(epoch, ...)``."""
    return lr * decay_factor ** num_decays(epoch, decay_start, decay_every)
