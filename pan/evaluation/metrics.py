"""Evaluation of a model on a PAN dataset: colour accuracy, TPR, accuracy by target-scale bin
(docs/design.md, Metrics)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pan.evaluation.tpr import image_attention, true_positive_ratio

SCALE_BINS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)


def scale_bin_labels() -> list[str]:
    """'[0.5,1.0)', ..., '[2.5,3.0]' (the last bin is closed)."""
    edges = SCALE_BINS
    return [f"[{lo:.1f},{hi:.1f}{']' if i == len(edges) - 2 else ')'}" for i, (lo, hi) in
            enumerate(zip(edges[:-1], edges[1:]))]


def scale_bin_index(scale: np.ndarray) -> np.ndarray:
    """Bin of each target scale in SCALE_BINS; 3.0 falls in the last bin."""
    return np.clip(np.searchsorted(SCALE_BINS, scale, side="right") - 1, 0, len(SCALE_BINS) - 2)


def batch_images(dataset, index: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of examples `index` as float [n, 3, 100, 100] in [0, 1] and their target masks [n, 100, 100] bool."""
    img_idx = dataset.image_index[index]
    images = torch.as_tensor(dataset.images[img_idx], device=device).permute(0, 3, 1, 2).float().div_(255)
    instances = torch.as_tensor(dataset.instances[img_idx], device=device)
    target = torch.as_tensor(dataset.target[index], device=device)
    return images, instances == target.to(instances.dtype)[:, None, None]


@torch.no_grad()
def evaluate(model: nn.Module, dataset, *, device="cpu", batch_size: int = 200, limit: int | None = None) -> dict:
    """Accuracy, mean TPR and accuracy by scale bin over the first `limit` (default all) examples of `dataset`."""
    model.eval()
    n = len(dataset.query) if limit is None else min(limit, len(dataset.query))
    correct = np.zeros(n, dtype=bool)
    tpr = np.zeros(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        index = np.arange(start, min(start + batch_size, n))
        images, masks = batch_images(dataset, index, device)
        query = torch.as_tensor(dataset.query[index], device=device, dtype=torch.long)
        out = model(images, query)
        pred = out.log_probs.argmax(-1).cpu().numpy()
        correct[index] = pred == dataset.answer[index]
        att = image_attention(out.attention, model.attention_geometry, len(index), device)
        tpr[index] = true_positive_ratio(att, masks).double().cpu().numpy()
    bins = scale_bin_index(np.asarray(dataset.scale[:n]))
    by_scale = {}
    for b, label in enumerate(scale_bin_labels()):
        sel = bins == b
        by_scale[label] = {"accuracy": float(correct[sel].mean()) if sel.any() else None, "count": int(sel.sum())}
    return {"num_examples": n, "accuracy": float(correct.mean()), "tpr": float(tpr.mean()),
            "accuracy_by_scale": by_scale}
