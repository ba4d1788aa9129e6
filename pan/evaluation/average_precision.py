"""Attribute mAP for the Visual Genome setting (paper §4.2; docs/design.md, Metrics): PASCAL VOC average
precision per attribute,
averaged with weights proportional to each attribute's number of positive examples.

    result = weighted_map(scores [N, A], labels [N, A] in {0, 1})
    result["weighted_map"], result["map"], result["ap"] [A] (NaN where an attribute has no positive example)
"""

from __future__ import annotations

import numpy as np


def voc_average_precision(scores, labels, *, eleven_point: bool = False) -> float:
    """AP of one attribute. scores [N] (higher = more confident), labels [N] in {0, 1}.

    Ranks by score, then takes the area under the precision-recall curve with precision made monotone
    (p(r) = max precision at recall >= r), as VOC 2010+ does; eleven_point=True gives VOC 2007's mean of p(r) at
    r = 0, 0.1, ..., 1. NaN when there is no positive example.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of one length, got {scores.shape} and {labels.shape}")
    positives = int((labels > 0).sum())
    if positives == 0:
        return float("nan")
    hits = (labels[np.argsort(-scores, kind="stable")] > 0).astype(np.float64)
    tp = np.cumsum(hits)
    recall = tp / positives
    precision = tp / np.arange(1, len(hits) + 1)
    if eleven_point:
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def weighted_map(scores, labels, *, eleven_point: bool = False) -> dict:
    """scores [N, A], labels [N, A] -> {"weighted_map", "map", "ap" [A], "positives" [A], "scored"}.

    weighted_map = sum_a n_a AP_a / sum_a n_a over attributes with n_a > 0 positives; map is their plain mean;
    "scored" counts them.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must both be [N, A], got {scores.shape} and {labels.shape}")
    ap = np.array([voc_average_precision(scores[:, a], labels[:, a], eleven_point=eleven_point)
                   for a in range(scores.shape[1])])
    positives = (labels > 0).sum(0)
    scored = positives > 0
    if not scored.any():
        raise ValueError("no attribute has a positive example: mAP is undefined")
    return {
        "weighted_map": float(np.sum(ap[scored] * positives[scored]) / positives[scored].sum()),
        "map": float(ap[scored].mean()),
        "ap": ap,
        "positives": positives,
        "scored": int(scored.sum()),
    }
