"""Checkpoints: atomic writes, loading, and rebuilding a trained model for evaluation.

A checkpoint is a dict saved with ``torch.save``: ``format``, ``config`` (``TrainConfig.to_dict()``), ``model``
(state dict of the bare model), ``optimizer`` (state dict, or None for a model without parameters), ``state`` (epochs
and steps done, best validation accuracy / loss / epoch, epochs without improvement, ...), ``accum`` (running
training sums of a mid-epoch checkpoint, ``[world_size, 4]`` float64: loss x count, correct, count, grad-norm sum;
None at an epoch boundary), ``world_size``, ``lr``, ``rng`` (torch RNG states) and ``metrics`` (the last epoch's
metrics line). Everything is plain data, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pan.train.config import TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "atomic_torch_save", "load_checkpoint", "load_model", "model_from_checkpoint",
           "ResumeError", "CheckpointError"]

CHECKPOINT_FORMAT = 1


class ResumeError(ValueError):
    """A run cannot be resumed (no checkpoint, or one made with different settings)."""


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: missing, unreadable (truncated, not a ``torch.save`` file), not a pan.train
    checkpoint, or weights that do not fit its model. The message names the file and the reason."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace``: a reader (or a crash) never
    sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)  # mkstemp makes 0600: give the file the mode open() would (0666 less the umask)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_failure(err: Exception) -> str:
    """The line of a torch.load error that says what is wrong (not torch's advice to load it unsafely)."""
    text = str(err).strip()
    if "WeightsUnpickler error" in text:
        detail = " ".join(text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0].split())
        return f"not plain tensors and data ({detail or 'unpickling refused'})"
    return text.splitlines()[0] if text else type(err).__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by ``pan.train.train`` (plain data only: ``weights_only=True``); raise
    ``CheckpointError`` naming the file when it is missing or cannot be one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, pickle garbage, foreign objects: torch raises many types
        reason = _load_failure(err)
        raise CheckpointError(f"cannot read checkpoint {path}: {reason} (truncated, corrupted, or not written by "
                              "pan train)") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a pan.train checkpoint (format {CHECKPOINT_FORMAT})")
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path} has no training config")
    return ckpt


def load_model(path: str | os.PathLike, *, backend: str = "auto",
               device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The trained model of a checkpoint (e.g. ``runs/NAME/best.pt``), on ``device`` in eval mode, and its config."""
    return model_from_checkpoint(load_checkpoint(path), path, backend=backend, device=device)


def model_from_checkpoint(ckpt: dict, path: str | os.PathLike, *, backend: str = "auto",
                          device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """``load_model`` for a checkpoint already read by ``load_checkpoint`` from ``path`` (named in errors)."""
    from pan.models import build_model

    try:
        config = TrainConfig.from_dict(ckpt["config"])
        model = build_model(config.model, backend=backend, **config.model_kwargs())
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not describe a model this version can build: {reason}") from err
    return model.to(device).eval(), config
