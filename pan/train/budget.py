"""Fit a recipe's epochs to a wall-clock budget: `pan demo` ends in about 15 minutes on any machine.

Training throughput differs ~5x between CPUs (AVX-512 BF16 vs AVX2-only cores, docs/training-notes.md §1), so a
fixed number of epochs is 10 minutes on one host and 25 on another. `measure_images_per_s` times a few real
optimiser steps of the run's model, precision and layout on random inputs; `fit_schedule` turns that into a number
of epochs and places the lr annealing inside it. The result is a set of ordinary
`TrainConfig` fields, recorded in the run's config.json, so a resumed run repeats it exactly.
"""

from __future__ import annotations

import math
import time

import torch

from pan.train.config import TrainConfig
from pan.train.precision import resolve_amp
from pan.train.step import train_step

__all__ = ["measure_images_per_s", "fit_schedule"]

#: Images per training image that an evaluation pass costs (a forward without the backward: about a third).
EVAL_COST = 1 / 3


def measure_images_per_s(config: TrainConfig, device: torch.device | str, *, warmup: int = 3, steps: int = 8,
                         image_size: int = 100) -> float:
    """Training images/s of ``config.model`` on ``device``: ``steps`` timed `pan.train.step.train_step` calls (Adam,
    batch ``config.batch_size``, ``config``'s clipping, amp and channels-last) on random 3 x ``image_size``^2 images,
    after ``warmup`` untimed ones (oneDNN / cuDNN pick their kernels then). Leaves the global RNG as it found it."""
    from pan.models import build_model

    device = torch.device(device)
    amp = resolve_amp(config.amp, device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        model = build_model(config.model, backend=config.backend, **config.model_kwargs())
        model = model.to(device).to(memory_format=layout)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return math.inf
        optimizer = torch.optim.Adam(params, lr=1e-4)
        b = config.batch_size
        images = torch.rand(b, 3, image_size, image_size, device=device).contiguous(memory_format=layout)
        query = torch.randint(0, 10, (b,), device=device)
        answer = torch.randint(0, 5, (b,), device=device)

        def step() -> None:
            train_step(model, optimizer, images, query, answer, clip_norm=config.clip_norm, amp=amp)

        for _ in range(warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return steps * b / (time.perf_counter() - start)


def fit_schedule(images_per_s: float, budget_s: float, *, num_train: int, num_val: int, reserve_s: float = 60.0,
                 min_epochs: int = 3, max_epochs: int = 30, anneal_epochs: int = 4) -> dict:
    """The epochs that fit: ``budget_s`` - ``reserve_s`` (data, test evaluation, figure) over the cost of one epoch
    (``num_train`` training images + ``num_val`` validation images at `EVAL_COST`), clamped to [``min_epochs``,
    ``max_epochs``]. The lr is annealed over the last ``anneal_epochs`` epochs, but never over the first half
    (``decay_start = max(E - anneal_epochs, E // 2 + 1)``, at most E). The recipe's gate-sparsity start stays: it
    counts the images the model needs to leave the query-blind plateau, which do not depend on the host. Returns
    TrainConfig fields (``max_epochs``, ``patience``, ``decay_start``) and ``epoch_seconds`` (the estimate)."""
    if not (images_per_s > 0 and budget_s > 0):
        raise ValueError(f"images_per_s and budget_s must be positive, got {images_per_s!r}, {budget_s!r}")
    if not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"need 1 <= min_epochs <= max_epochs, got {min_epochs}, {max_epochs}")
    epoch_s = (num_train + EVAL_COST * num_val) / images_per_s
    epochs = int(min(max(math.floor(max(budget_s - reserve_s, 0.0) / epoch_s), min_epochs), max_epochs))
    decay_start = min(max(epochs - anneal_epochs, epochs // 2 + 1), epochs)
    return {"max_epochs": epochs, "patience": epochs, "decay_start": decay_start, "epoch_seconds": epoch_s}
