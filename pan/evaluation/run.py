"""Evaluate a trained checkpoint (or the parameter-free uniform baseline) on a dataset split, as `pan eval` does."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pan.evaluation.metrics import evaluate
from pan.train.distributed import resolve_device


def load_for_eval(checkpoint: str | None, model_name: str | None, *, backend: str, device: torch.device):
    """(model, model name, default dataset, data seed, mnist_dir, epochs trained) from a checkpoint, or a fresh
    uniform model (epochs None)."""
    if checkpoint is not None:
        from pan.train.checkpoint import load_checkpoint, model_from_checkpoint

        ckpt = load_checkpoint(checkpoint)
        model, config = model_from_checkpoint(ckpt, checkpoint, backend=backend, device=device)
        epochs = ckpt.get("state", {}).get("epoch")
        return model, config.model, config.dataset, config.data_seed, config.mnist_dir, epochs
    from pan.models import build_model

    if model_name != "uniform":
        raise ValueError("a trained model needs --checkpoint; only --model uniform evaluates without one")
    return build_model("uniform").to(device), "uniform", None, 0, None, None


def evaluate_run(*, checkpoint: str | None = None, model_name: str | None = None, dataset: str | None = None,
                 split: str = "test", num_examples: int = 10_000, seed: int | None = None, backend: str = "auto",
                 device: str = "auto", batch_size: int = 200, cache_dir=None, out: str | None = None,
                 data_file: str | None = None) -> dict:
    """Evaluate and write the result JSON (default: next to the checkpoint, eval_<dataset>_<split>.json). With
    ``data_file`` (a ``pan data generate`` .npz) its examples are evaluated; dataset and split come from the file."""
    from pan.data import DEFAULT_CACHE_DIR, PanDataset, make_dataset

    dev = resolve_device(device)
    model, name, ckpt_dataset, data_seed, mnist_dir, epochs = load_for_eval(checkpoint, model_name, backend=backend,
                                                                             device=dev)
    if data_file is not None:
        data = PanDataset.load(data_file)
        dataset, split = data.meta.get("name", dataset or ckpt_dataset), data.meta.get("split", split)
    else:
        dataset = dataset or ckpt_dataset
        if dataset is None:
            raise ValueError("--dataset is required without a checkpoint")
        data = make_dataset(dataset, split, num_examples, seed=data_seed if seed is None else seed,
                            mnist_dir=mnist_dir, cache_dir=DEFAULT_CACHE_DIR if cache_dir is None else cache_dir)
    result = {"model": name, "dataset": dataset, "split": split, "checkpoint": checkpoint,
              **({"data_file": str(data_file), "data_meta": data.meta} if data_file is not None else {}),
              "checkpoint_epoch": epochs, "backend": backend, "device": str(dev),
              **evaluate(model, data, device=dev, batch_size=batch_size)}
    if out is None:
        base = Path(checkpoint).parent if checkpoint else Path("runs") / "uniform"
        out = str(base / f"eval_{dataset}_{split}.json")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    result["out"] = out
    return result
