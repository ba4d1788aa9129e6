"""The attribute-prior baseline and the query-check helpers (pan.evaluation.attribute_prior, real_images) on the
tiny Visual Genome fixture, against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pan.data.real_images import VisualGenomeImages
from pan.data.visual_genome import VisualGenome
from pan.evaluation.attribute_prior import attribute_prior, evaluate_attribute_prior
from pan.evaluation.average_precision import weighted_map
from pan.evaluation.real_images import QueryOverride, uniform_box_tpr, wrong_queries
from tests.real_image_fixtures import write_vg

# image id -> objects; classes cat (5), dog (3); attributes black (5), white (3), red (2)
OBJECTS = {
    1: [("cat", ["black"], (0, 0, 10, 8)), ("dog", ["white", "red"], (10, 8, 10, 8))],
    2: [("cat", ["black", "red"], (0, 0, 5, 4)), ("dog", ["white"], (5, 4, 5, 4))],
    3: [("cat", ["white"], (0, 0, 20, 16))],
    4: [("cat", ["black"], (2, 2, 4, 4)), ("cat", ["black"], (8, 8, 4, 4)), ("dog", ["black"], (0, 0, 2, 2))],
}


@pytest.fixture
def splits(tmp_path):
    root = write_vg(tmp_path / "vg", OBJECTS)
    return [VisualGenome(root, s, min_count=1, seed=0, cache_dir=None) for s in ("train", "test")]


def test_prior_is_the_attribute_frequency_of_the_queried_class(splits):
    train, test = splits
    targets, queries = train.targets(), train.queries
    expected = np.stack([targets[queries == q].mean(0) if (queries == q).any() else targets.mean(0)
                         for q in range(len(train.classes))])
    np.testing.assert_allclose(attribute_prior(train), expected)
    result = evaluate_attribute_prior(train, test)
    np.testing.assert_allclose(result["weighted_map"],
                               weighted_map(expected[test.queries], test.targets())["weighted_map"])


def test_prior_by_hand():
    class Split:  # two cats (black; black + white), one dog (white); 2 classes, 2 attributes
        classes, attributes = ["cat", "dog"], ["black", "white"]
        queries = np.array([0, 0, 1])

        def targets(self):
            return np.array([[1, 0], [1, 1], [0, 1]], dtype=np.uint8)

    np.testing.assert_allclose(attribute_prior(Split()), [[1.0, 0.5], [0.0, 1.0]])


def test_wrong_queries_name_another_object_of_the_same_image(splits):
    for split in splits:
        wrong = wrong_queries(split)
        for e, w in zip(split.examples, wrong):
            classes_here = {x.query for x in split.examples if x.image_id == e.image_id}
            if len(classes_here) == 1:
                assert w == -1
            else:
                assert w != e.query and w in classes_here


def test_query_override_and_uniform_tpr(splits):
    test = splits[1]
    data = VisualGenomeImages(test, size=20)
    swapped = QueryOverride(data, [1, 0], [1, 0])
    assert len(swapped) == 2
    image, query, target, mask = swapped[0]
    original = data[1]
    assert query.item() == 1 and torch.equal(image, original[0]) and torch.equal(target, original[2])
    assert torch.equal(mask, original[3])
    areas = [e.box[2] * e.box[3] / (20 * 16) for e in test.examples]  # boxes on whole pixels of the 20 x 16 images
    assert uniform_box_tpr(test, 20) == pytest.approx(np.mean(areas), abs=0.02)
