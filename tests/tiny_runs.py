"""A one-epoch `pan.train.train` run on 40 MREF examples, for the tests of the commands that read its checkpoint."""

from __future__ import annotations

from pathlib import Path

from pan.data import make_dataset
from pan.train import TrainConfig, train


def train_tiny_mref(root: Path, model: str, run_name: str) -> dict:
    """Train ``model`` for one epoch (batch 20) on 40 train / 20 val MREF examples cached under ``root/cache``;
    the run goes to ``root/run_name``. Returns train's summary (its ``checkpoint`` path among others)."""
    cache = root / "cache"
    train_data = make_dataset("mref", "train", 40, seed=0, cache_dir=cache)
    val_data = make_dataset("mref", "val", 20, seed=0, cache_dir=cache)
    config = TrainConfig(model=model, num_train=40, num_val=20, batch_size=20, max_epochs=1, backend="torch",
                         device="cpu", out_dir=str(root / run_name), quiet=True)
    return train(config, train_data=train_data, val_data=val_data)
