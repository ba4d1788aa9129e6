"""TPR and evaluation metrics on hand-made attention maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pan.evaluation import image_attention, scale_bin_index, scale_bin_labels, spread_to_image, true_positive_ratio
from pan.models.backbone import IMAGE_GEOMETRY, STAGE_GEOMETRY, Geometry


def _random_masks(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(B, 100, 100, dtype=torch.bool)
    for b in range(B):
        r, c = torch.randint(0, 80, (2,), generator=g).tolist()
        h, w = torch.randint(5, 20, (2,), generator=g).tolist()
        masks[b, r:r + h, c:c + w] = torch.rand(h, w, generator=g) > 0.3
    return masks


def test_stage_geometry_matches_the_network():
    assert [(g.rf, g.stride) for g in STAGE_GEOMETRY] == [(4, 2), (10, 4), (22, 8), (46, 16)]


def test_uniform_attention_gives_mean_mask_fraction():
    masks = _random_masks()
    att = image_attention([], [], batch=3, device="cpu")
    torch.testing.assert_close(true_positive_ratio(att, masks), masks.float().mean((1, 2)))


def test_uniform_stage1_maps_follow_receptive_field_coverage():
    """Stage-1 locations (rf 4, stride 2) see interior pixels 4 times and border pixels fewer: uniform maps give
    an interior mask exactly count / (4 * 49 * 49) of the mass."""
    masks = _random_masks()
    masks[:, :2], masks[:, 98:], masks[:, :, :2], masks[:, :, 98:] = False, False, False, False
    att = image_attention([torch.full((3, 49, 49), 0.7)], [STAGE_GEOMETRY[0]], batch=3, device="cpu")
    torch.testing.assert_close(true_positive_ratio(att, masks), masks.float().sum((1, 2)) / (4 * 49 * 49))


def test_all_mass_on_the_mask_gives_one():
    masks = _random_masks()
    att = image_attention([masks.float() * torch.rand(3, 100, 100) + masks.float()], [IMAGE_GEOMETRY], 3, "cpu")
    torch.testing.assert_close(true_positive_ratio(att, masks), torch.ones(3, dtype=torch.float32))


def test_single_location_spreads_over_its_receptive_field():
    values = torch.zeros(1, 23, 23)
    values[0, 5, 7] = 2.0
    image = spread_to_image(values, STAGE_GEOMETRY[1])  # rf 10, stride 4
    support = image[0] > 0
    assert support[20:30, 28:38].all() and support.sum() == 100
    torch.testing.assert_close(image.sum(), torch.tensor(2.0))


def test_maps_multiply_across_layers():
    """A sharp last-layer map times a sigmoid map that is zero on half the image keeps only the overlap."""
    last = torch.zeros(1, 4, 4)
    last[0, 0, 0] = 1.0  # covers pixels [0, 46) x [0, 46)
    first = torch.zeros(1, 49, 49)
    first[0, :, :12] = 1.0  # covers columns [0, 26)
    att = image_attention([first, last], [STAGE_GEOMETRY[0], STAGE_GEOMETRY[3]], 1, "cpu")
    nz = att[0] > 0
    assert nz[:46, :26].all() and nz.sum() == 46 * 26
    torch.testing.assert_close(att.sum(), torch.tensor(1.0))


def test_map_count_must_match_geometry():
    with pytest.raises(ValueError, match="geometries"):
        image_attention([torch.ones(1, 4, 4)], [], 1, "cpu")


def test_scale_bins():
    assert scale_bin_labels() == ["[0.5,1.0)", "[1.0,1.5)", "[1.5,2.0)", "[2.0,2.5)", "[2.5,3.0]"]
    assert scale_bin_index(np.array([0.5, 0.99, 1.0, 2.49, 2.5, 3.0])).tolist() == [0, 0, 1, 3, 4, 4]


def test_geometry_is_frozen():
    with pytest.raises(AttributeError):
        Geometry(1, 1).rf = 3


def test_attention_panels_put_each_location_at_its_receptive_field_centre():
    from pan.models.backbone import STAGE_GEOMETRY
    from pan.viz.figures import upsample_to_image

    for geometry, (h, w) in zip(STAGE_GEOMETRY, [(49, 49), (23, 23), (10, 10), (4, 4)]):
        values = torch.zeros(1, h, w)
        i, j = h // 3, w - 2
        values[0, i, j] = 1.0
        image = upsample_to_image(values, geometry)
        assert image.shape == (1, 100, 100)
        peak = divmod(int(image[0].argmax()), 100)
        centre = (i * geometry.stride + (geometry.rf - 1) / 2, j * geometry.stride + (geometry.rf - 1) / 2)
        assert abs(peak[0] - centre[0]) <= 0.5 and abs(peak[1] - centre[1]) <= 0.5, (geometry, peak, centre)
        assert 0.5 <= float(image.max()) <= 1.0 and float(image.min()) >= 0.0  # centres fall between pixels
