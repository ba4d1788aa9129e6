"""The two baselines a trained PAN must beat to show it attends (docs/design.md, Metrics; `pan demo` reports both).

- query-blind answer: the most common colour among the image's digits (ties: the lowest colour index), what a model
  that ignores the query can at best learn from the image alone;
- uniform attention: TPR = the target mask's share of the image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["query_blind_accuracy", "uniform_tpr"]


def query_blind_accuracy(dataset) -> float:
    """Accuracy on ``dataset`` (a PanDataset) of answering every query of an image with its most common colour."""
    answers = np.asarray(dataset.answer)
    image_index = np.asarray(dataset.image_index)
    counts = np.zeros((dataset.num_images, int(answers.max(initial=0)) + 1), np.int64)
    np.add.at(counts, (image_index, answers), 1)
    return float((counts.argmax(1)[image_index] == answers).mean()) if len(answers) else float("nan")


def uniform_tpr(dataset) -> float:
    """Mean fraction of the image covered by the queried digit's mask (the TPR of uniform attention)."""
    areas = [dataset.target_mask(i).mean() for i in range(len(dataset))]
    return float(np.mean(areas)) if areas else float("nan")
