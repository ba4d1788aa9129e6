"""The training loop (docs/design.md, Training): RMSprop, lr schedule, gradient clipping, early stopping, checkpoints,
exact resume, JSON-lines metrics, progress bar, torch.compile / bf16 autocast, and DistributedDataParallel under
torchrun.

Batches: epoch ``e`` visits the training examples in ``epoch_permutation(seed, e)``; step ``s`` takes the global
batch ``perm[s*B:(s+1)*B]`` (``B = batch_size``) and, with ``W`` processes, rank ``r`` takes its ``r``-th slice of
``B // W`` examples. The last partial batch of an epoch is dropped (every step has the same shape, which suits
torch.compile and CUDA graphs; the permutation changes every epoch, so every example is still used). Validation
uses every example, in fixed-shape batches whose padding is masked out.

Resume: a checkpoint (``out_dir/last.pt``) is written after every epoch, every ``checkpoint_every`` minutes inside
an epoch, and when the run is interrupted (SIGINT / SIGTERM, or the ``stop_after_steps`` test hook) between two
steps, with the step position and the running training sums. Since the batch order, the lr schedule and early stopping
depend only on ``(seed, epoch, step)`` and the saved state — never on ``max_epochs`` or on where a run stopped — a
resumed run computes the same steps as an uninterrupted one (bit-exact on CPU; on GPU with ``deterministic=True`` and
the same world size).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from pan.train.checkpoint import ResumeError
from pan.train.config import TrainConfig
from pan.train.data import load_datasets
from pan.train.distributed import setup_distributed, teardown_distributed
from pan.train.divergence import TrainingDiverged
from pan.train.loop import TrainingRun
from pan.train.mref_task import MrefTask
from pan.train.precision import resolve_amp

__all__ = ["train", "lr_grid"]


def train(config: TrainConfig, *, train_data: Any = None, val_data: Any = None) -> dict:
    """Train ``config.model`` as docs/design.md, Training, says; returns a summary dict.

    ``train_data`` / ``val_data`` (PanDataset-like objects: ``images``, ``image_index``, ``query``, ``answer``)
    replace the datasets the config names. Under ``torchrun`` (WORLD_SIZE > 1) every process calls this; rank 0
    writes the outputs. Summary keys: ``best_val_acc``, ``best_val_loss``, ``best_epoch``, ``epochs`` (completed),
    ``steps``, ``stopped`` ("early_stopping" | "max_epochs" | "interrupted" | "no_parameters"), ``checkpoint``
    (best.pt), ``last_checkpoint``, ``metrics`` (metrics.jsonl), ``out_dir``, ``last_epoch_metrics``,
    ``param_digest`` (of this rank's weights), ``world_size``, ``rank``, ``seconds``, and the config's ``model``,
    ``dataset``, ``lr``, ``seed``.

    A non-finite loss or gradient norm raises `pan.train.TrainingDiverged` (one-line message: where, the checkpoint
    kept, what to try); no checkpoint of non-finite weights is written, and summary.json says ``"diverged"``.
    """
    config.validate()
    dctx, device = setup_distributed(config.device)
    config = dataclasses.replace(config, amp=resolve_amp(config.amp, device))
    if train_data is None or val_data is None:
        train_data, val_data = load_datasets(config)
    try:
        summary = TrainingRun(MrefTask(config, train_data, val_data), dctx, device).run()
    except TrainingDiverged:
        teardown_distributed(dctx)  # every rank stops at the same step
        raise
    teardown_distributed(dctx)
    return summary


def lr_grid(config: TrainConfig, lrs: tuple[float, ...] | list[float] = (0.001, 0.002, 0.005), *,
            train_data: Any = None, val_data: Any = None) -> dict:
    """Train once per initial learning rate (in ``out_dir/lr_<lr>/``) and keep the one with the best validation
    accuracy (ties: the earlier lr in ``lrs``); writes and returns ``out_dir/best.json``: ``best_lr``,
    ``best_val_acc``, ``best_epoch``, ``checkpoint``, ``out_dir`` (of the best run), ``runs`` (every run's summary)
    and ``complete`` (False when a run was interrupted; the grid then stops there; a run that diverges is recorded
    with ``stopped == "diverged"`` and the grid goes on). With ``config.resume``, each run
    that has a checkpoint resumes and the others start."""
    lrs = [float(lr) for lr in lrs]
    if not lrs or any(not (math.isfinite(lr) and lr > 0) for lr in lrs):
        raise ValueError(f"the lr grid must be a non-empty list of positive numbers, got {lrs}")
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"the lr grid has duplicates: {lrs}")
    out_dir = Path(config.out_dir)
    if config.resume and not any((out_dir / f"lr_{lr:g}" / "last.pt").is_file() for lr in lrs):
        raise ResumeError(f"cannot resume: no checkpoint under {out_dir}/lr_*/last.pt")
    dctx, _ = setup_distributed(config.device)
    if train_data is None or val_data is None:
        train_data, val_data = load_datasets(config)
    runs = []
    for lr in lrs:
        sub_dir = out_dir / f"lr_{lr:g}"
        sub = dataclasses.replace(config, lr=lr, out_dir=str(sub_dir),
                                  resume=config.resume and (sub_dir / "last.pt").is_file())
        try:
            runs.append(train(sub, train_data=train_data, val_data=val_data))
        except TrainingDiverged as err:  # that lr failed; its best epoch before (if any) still competes
            runs.append(err.summary)
            if dctx.rank == 0 and not config.quiet:
                print(f"lr {lr:g}: {err}", file=sys.stderr, flush=True)
        if runs[-1]["stopped"] == "interrupted":
            break
    done = [r for r in runs if r["best_val_acc"] is not None]
    best = max(done, key=lambda r: r["best_val_acc"]) if done else None  # max keeps the first of equals
    result = {
        "best_lr": best["lr"] if best else None, "best_val_acc": best["best_val_acc"] if best else None,
        "best_epoch": best["best_epoch"] if best else None, "checkpoint": best["checkpoint"] if best else None,
        "out_dir": best["out_dir"] if best else None, "lrs": lrs,
        "complete": len(runs) == len(lrs) and runs[-1]["stopped"] != "interrupted", "runs": runs,
    }
    if dctx.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / "best.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out_dir / "best.json")
    teardown_distributed(dctx)
    return result
