"""What a run carries between steps besides weights and optimizer: counters, the metrics log, RNG states."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["RunState", "MetricsLog", "rng_state", "set_rng_state", "fmt"]


@dataclass
class RunState:
    """What a checkpoint needs besides weights and optimizer: all counters are global (the same on every rank)."""

    epoch: int = 0  # completed epochs
    step: int = 0  # steps done in epoch `epoch + 1` (0 at an epoch boundary)
    global_step: int = 0
    best_val_acc: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one
    epoch_seconds: float = 0.0  # time already spent in the current (partial) epoch
    epoch_train_seconds: float = 0.0


class MetricsLog:
    """out_dir/metrics.jsonl, one JSON object per epoch; on resume, lines after the checkpoint's epoch are dropped."""

    def __init__(self, path: Path, keep_epochs: int | None, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        lines: list[str] = []
        if keep_epochs is not None and path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line).get("epoch", 0) <= keep_epochs:
                    lines.append(line)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, path)

    def append(self, entry: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


def fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.2f}%" if pct else f"{x:.4f}"
