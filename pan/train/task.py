"""What one training engine (`pan.train.loop.TrainingRun`) needs to know about a task: MREF-style questions
(`pan.train.mref_task.MrefTask`) and Visual Genome attributes (`pan.train.real_task.RealImageTask`) implement it.

The engine owns everything the tasks share: the batch order and its split over torchrun processes, DDP, bf16
autocast, channels-last, the epoch loop, progress bar, metrics log, checkpoints (epoch end, wall-clock timer,
interruption), exact resume, early stopping and the divergence stop. A task owns its data, model, optimiser, lr
schedule, loss, validation metric and what its checkpoints and log lines record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Task", "EngineSettings"]


@dataclass
class EngineSettings:
    """The settings the engine reads (`TrainConfig` has them all under these names; a task without one of them
    gives an object like this). ``patience`` None: no early stopping. ``checkpoint_every``: minutes between timed
    checkpoints inside an epoch (0: only at epoch ends)."""

    out_dir: str
    seed: int
    batch_size: int
    max_epochs: int
    clip_norm: float | None
    amp: bool
    patience: int | None = None
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    deterministic: bool = False
    quiet: bool = False
    log_every: int = 20
    stop_after_steps: int | None = None
    checkpoint_every: float = 10.0
    resume: bool = False
    overwrite: bool = False


class Task:
    """The interface of a task (methods the engine calls, in order of use). ``settings`` has the fields of
    `EngineSettings`; ``accum_size`` is the length of the float64 running sums a step returns (saved in mid-epoch
    checkpoints as ``accum [world_size, accum_size]``)."""

    settings: Any
    accum_size: int = 4
    fullgraph: bool = False  # torch.compile(fullgraph=True) suits the model

    def config_dict(self) -> dict:
        """The run's config as plain data (config.json, ``checkpoint["config"]``)."""
        raise NotImplementedError

    def resume_mismatches(self, saved: dict) -> list[str]:
        """``"field: saved -> now"`` lines for settings a resumed run must share with its checkpoint's config."""
        raise NotImplementedError

    def prepare(self, device: torch.device) -> int:
        """Load / place the data on ``device``; returns the number of training examples."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        """A fresh model (the engine seeds torch first, moves it to the device and to channels-last)."""
        raise NotImplementedError

    def initialise(self, model: nn.Module) -> None:
        """Called once on the freshly built model of a new (not resumed) run, e.g. to load warm-start weights."""

    def build_optimizer(self, model: nn.Module, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def set_lr(self, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        """Set the learning rates of (1-based) ``epoch``; returns the one the metrics log records."""
        raise NotImplementedError

    def index_device(self) -> torch.device:
        """Where the example indices of a batch should be (the device the training data lives on)."""
        return torch.device("cpu")

    def batches(self, epoch: int, indices: Iterator[torch.Tensor]) -> Iterator[Any]:
        """One batch per tensor of example indices (this process's share of each step), on the training device."""
        raise NotImplementedError

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any, epoch: int,
                   local_batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step: (float64 sums ``[accum_size]`` to add to the epoch's, mean loss, gradient norm before
        clipping), all device tensors (no host sync)."""
        raise NotImplementedError

    def validate(self, model: nn.Module, rank: int, world: int, all_sum) -> tuple[float, dict]:
        """(score, metrics) on the validation set, the same on every rank; a higher score is better (best.pt, early
        stopping). A task that shards the work sums its parts with ``all_sum`` (collective under DDP)."""
        raise NotImplementedError

    def postfix(self, sums: list[float]) -> dict:
        """Progress-bar fields from the epoch's running sums so far (this rank's)."""
        return {}

    def epoch_line(self, *, epoch: int, global_step: int, lr: float, train: list[float], steps: int, world: int,
                   val: dict, best_score: float, best_epoch: int, seconds: float, images_per_s: float) -> dict:
        """The metrics.jsonl line of an epoch from the summed training sums ``train`` (over ``steps`` x ``world``
        steps) and ``validate``'s metrics."""
        raise NotImplementedError

    def epoch_message(self, line: dict, improved: bool) -> str:
        """The line printed after an epoch."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict:
        """Keys a checkpoint holds besides the engine's (e.g. a vocabulary)."""
        return {}

    def summary_fields(self) -> dict:
        """Keys the run's summary starts with (e.g. model, dataset, lr, seed)."""
        return {}

    def evaluate_only(self, model: nn.Module, rank: int, world: int, all_sum) -> tuple[dict, float, float, str]:
        """A model without parameters: (metrics line of epoch 0, validation score, validation loss, message)."""
        raise NotImplementedError(f"{type(self).__name__}: a model without trainable parameters cannot be trained")
