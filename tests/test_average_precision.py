"""PASCAL VOC average precision and the frequency-weighted attribute mAP, against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pan.evaluation.average_precision import voc_average_precision, weighted_map


def test_ap_hand_computed():
    # ranks: + - + -  -> precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1
    scores, labels = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]
    # monotone precision: 1 up to recall 1/2, 2/3 up to recall 1 -> 0.5 * 1 + 0.5 * 2/3
    assert voc_average_precision(scores, labels) == pytest.approx(0.5 + 1 / 3)
    # VOC 2007: r = 0..0.5 (6 points) at precision 1, r = 0.6..1 (5 points) at 2/3 -> (6 + 10/3) / 11
    assert voc_average_precision(scores, labels, eleven_point=True) == pytest.approx((6 + 10 / 3) / 11)
    # order matters, not the score values; a perfect ranking scores 1
    assert voc_average_precision([5.0, -1.0, 3.0, 4.0], [1, 0, 1, 1]) == pytest.approx(1.0)
    assert math.isnan(voc_average_precision([0.1, 0.2], [0, 0]))


def test_weighted_map_hand_computed():
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.9, 0.4], [0.7, 0.2, 0.3], [0.6, 0.3, 0.2]])
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    result = weighted_map(scores, labels)
    # attribute 0: AP 5/6 with 2 positives; attribute 1: AP 1 with 1 positive; attribute 2: no positive, skipped
    assert result["scored"] == 2 and math.isnan(result["ap"][2])
    assert result["weighted_map"] == pytest.approx((2 * 5 / 6 + 1 * 1.0) / 3)
    assert result["map"] == pytest.approx((5 / 6 + 1.0) / 2)
    with pytest.raises(ValueError, match="must both be"):
        weighted_map(scores, labels[:, :2])
    with pytest.raises(ValueError, match="no attribute has a positive"):
        weighted_map(scores, np.zeros_like(labels))
