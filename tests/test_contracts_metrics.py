"""The numbers a paper table is made of, from scripted model outputs with hand-computed answers: `evaluate`'s
accuracy, mean TPR (attention normalised per example, whatever its scale) and the five scale bins (edges, the closed
last bin, empty bins, ``limit``, batch boundaries); VOC AP's monotone precision; the query-blind baseline's tie rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pan.data import PanDataset
from pan.evaluation.average_precision import voc_average_precision, weighted_map
from pan.evaluation.baselines import query_blind_accuracy, uniform_tpr
from pan.evaluation.metrics import evaluate, scale_bin_index, scale_bin_labels
from pan.models import ModelOutput
from pan.models.backbone import IMAGE_GEOMETRY
from tests.test_train_support import synthetic_dataset

SCALES = np.array([0.5, 0.99, 1.0, 1.49, 2.5, 3.0, 2.0], np.float32)
CORRECT = np.array([True, False, True, True, False, True, False])
IN_MASK = np.array([0.9, 0.1, 0.5, 1.0, 0.0, 0.25, 0.6])  # the attention mass each example puts on its mask


class _Scripted(nn.Module):
    """Answers the examples in order (evaluate's contract): right or wrong as CORRECT says, with an image-space
    attention map that puts IN_MASK[i] of its mass on example i's target mask, scaled by an arbitrary factor."""

    attention_geometry = (IMAGE_GEOMETRY,)

    def __init__(self, data: PanDataset):
        super().__init__()
        self.data, self.next = data, 0

    def forward(self, images, query):
        index = np.arange(self.next, self.next + len(query))
        self.next += len(query)
        assert torch.equal(query, torch.as_tensor(self.data.query[index]))  # examples come in order
        answer = torch.as_tensor(self.data.answer[index])
        pred = torch.where(torch.as_tensor(CORRECT[index]), answer, (answer + 1) % 5)
        log_probs = torch.log_softmax(10.0 * nn.functional.one_hot(pred, 5).float(), dim=1)
        maps = []
        for i in index:
            mask = torch.as_tensor(self.data.target_mask(int(i)))
            inside, area = IN_MASK[i] / mask.sum(), (1 - IN_MASK[i]) / (~mask).sum()
            maps.append(torch.where(mask, inside, area).float() * (3.7 + i))
        return ModelOutput(log_probs, (torch.stack(maps),))


@pytest.fixture(scope="module")
def data() -> PanDataset:
    base = synthetic_dataset(len(SCALES), seed=3)
    return PanDataset(**{**base.arrays(), "scale": SCALES}, meta=base.meta)


@pytest.mark.parametrize("batch_size", [200, 3, 1])
def test_evaluate_accuracy_tpr_and_scale_bins(data, batch_size):
    result = evaluate(_Scripted(data), data, batch_size=batch_size)
    assert result["num_examples"] == 7
    assert result["accuracy"] == pytest.approx(4 / 7)
    assert result["tpr"] == pytest.approx(IN_MASK.mean(), abs=1e-5)
    by_scale = result["accuracy_by_scale"]
    assert list(by_scale) == scale_bin_labels()
    # [0.5,1): 0.5 right, 0.99 wrong; [1,1.5): 1.0, 1.49 right; [1.5,2): none; [2,2.5): 2.0 wrong; [2.5,3]: 2.5
    # wrong, 3.0 right
    assert [by_scale[k]["count"] for k in by_scale] == [2, 2, 0, 1, 2]
    assert [by_scale[k]["accuracy"] for k in by_scale] == [0.5, 1.0, None, 0.0, 0.5]


def test_evaluate_limit_takes_the_first_examples(data):
    result = evaluate(_Scripted(data), data, batch_size=2, limit=5)
    assert result["num_examples"] == 5
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["tpr"] == pytest.approx(IN_MASK[:5].mean(), abs=1e-5)
    by_scale = result["accuracy_by_scale"].values()  # the first five scales: 0.5, 0.99, 1.0, 1.49, 2.5
    assert [v["count"] for v in by_scale] == [2, 2, 0, 0, 1]
    assert [v["accuracy"] for v in by_scale] == [0.5, 1.0, None, None, 0.0]


def test_every_scale_bin_edge():
    edges = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert scale_bin_index(edges).tolist() == [0, 1, 2, 3, 4, 4]  # [lo, hi), the last bin closed
    assert scale_bin_index(np.nextafter(edges[1:], 0)).tolist() == [0, 1, 2, 3, 4]  # just below an edge


def test_ap_uses_the_monotone_precision_envelope():
    # ranks - + + : precision 0, 1/2, 2/3 at recall 0, 1/2, 1; the envelope is 2/3 everywhere -> AP 2/3
    # (the raw curve would give 1/2 * 1/2 + 1/2 * 2/3)
    assert voc_average_precision([0.9, 0.8, 0.7], [0, 1, 1]) == pytest.approx(2 / 3)
    # eleven points, all at precision 2/3
    assert voc_average_precision([0.9, 0.8, 0.7], [0, 1, 1], eleven_point=True) == pytest.approx(2 / 3)
    # the ranking is by score, highest first, whatever the input order
    assert voc_average_precision([0.7, 0.8, 0.9], [1, 1, 0]) == pytest.approx(2 / 3)
    assert voc_average_precision([0.1, 0.2, 0.9], [0, 0, 1]) == pytest.approx(1.0)
    assert voc_average_precision([0.9, 0.2, 0.1], [0, 0, 1]) == pytest.approx(1 / 3)


def test_weighted_map_weights_by_positives_not_by_attribute():
    # attribute 0: 3 positives, perfect (AP 1); attribute 1: 1 positive ranked last of 4 (AP 1/4)
    scores = np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.1, 0.1]])
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1]])
    result = weighted_map(scores, labels)
    assert result["ap"].tolist() == pytest.approx([1.0, 0.25])
    assert result["weighted_map"] == pytest.approx((3 * 1.0 + 1 * 0.25) / 4)
    assert result["map"] == pytest.approx(0.625)
    assert result["positives"].tolist() == [3, 1]


def test_query_blind_baseline_majority_colour_and_lowest_index_on_ties():
    base = synthetic_dataset(6, seed=0)
    # image 0: colours 2, 2, 4 -> answers 2, right twice; image 1: colours 3, 1 -> tie, answers 1; image 2: one digit
    image_index = np.array([0, 0, 0, 1, 1, 2])
    answer = np.array([2, 4, 2, 3, 1, 0])
    arrays = {**base.arrays(), "image_index": image_index, "answer": answer, "target": np.array([1, 2, 1, 1, 2, 1]),
              "query": np.array([0, 1, 5, 0, 1, 0])}
    data = PanDataset(**arrays, meta=base.meta)
    assert query_blind_accuracy(data) == pytest.approx(4 / 6)
    areas = [(data.instances[k] == t).mean() for k, t in zip(image_index, data.target)]  # the target's share
    assert uniform_tpr(data) == pytest.approx(np.mean(areas)) and 0 < np.mean(areas) < 1
