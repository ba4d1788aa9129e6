"""Properties of generated MREF / MDIST / MBG data (docs/design.md, Datasets), checked on the data itself."""

from __future__ import annotations

import numpy as np
import pytest

from pan.data import COLOR_NAMES, COLOR_RGB, PanDataset, make_dataset
from pan.data.constants import DIGIT_GAP, DIGITS_PER_IMAGE, MASK_THRESHOLD, SCALE_RANGE

N = 400


@pytest.fixture(scope="module", params=["mref", "mdist", "mbg"])
def ds(request) -> PanDataset:
    return make_dataset(request.param, "train", N, seed=3, cache_dir=None)


@pytest.fixture(scope="module")
def mref() -> PanDataset:
    return make_dataset("mref", "val", N, seed=5, cache_dir=None)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


def test_colour_constants():
    assert COLOR_NAMES == ("green", "yellow", "white", "red", "blue")
    assert COLOR_RGB.shape == (5, 3) and COLOR_RGB.dtype == np.uint8
    assert len({tuple(c) for c in COLOR_RGB}) == 5


def test_shapes_and_dtypes(ds):
    n_img = ds.num_images
    assert len(ds) == N
    assert ds.images.shape == (n_img, 100, 100, 3) and ds.images.dtype == np.uint8
    assert ds.instances.shape == (n_img, 100, 100) and ds.instances.dtype == np.uint8
    for key in ("image_index", "query", "answer", "target"):
        arr = getattr(ds, key)
        assert arr.shape == (N,) and np.issubdtype(arr.dtype, np.integer), key
    assert ds.scale.shape == (N,) and np.issubdtype(ds.scale.dtype, np.floating)
    assert ds.query.min() >= 0 and ds.query.max() <= 9
    assert ds.answer.min() >= 0 and ds.answer.max() < len(COLOR_NAMES)
    assert ds.images.std() > 10  # not constant
    ds.validate()


def test_digits_per_image_and_one_example_per_digit(ds):
    lo, hi = DIGITS_PER_IMAGE
    assert np.all(np.diff(ds.image_index) >= 0)
    assert np.array_equal(np.unique(ds.image_index), np.arange(ds.num_images))
    for k in range(ds.num_images):
        ids = np.unique(ds.instances[k])
        n = int(ids.max())
        assert lo <= n <= hi
        assert np.array_equal(ids, np.arange(n + 1)), "instance ids are 1..n, each with a non-empty mask"
        examples = np.flatnonzero(ds.image_index == k)
        targets = ds.target[examples]
        if k < ds.num_images - 1:
            assert np.array_equal(targets, np.arange(1, n + 1)), "every digit yields one example"
        else:  # the last image may be truncated to reach exactly N examples
            assert np.array_equal(targets, np.arange(1, len(examples) + 1))
        queries = ds.query[examples]
        assert len(set(queries.tolist())) == len(queries), "distinct classes, the query digit appears once"
    assert len({(int(i), int(q)) for i, q in zip(ds.image_index, ds.query, strict=True)}) == N


def test_classes_and_colours_vary(ds):
    assert len(np.unique(ds.query)) == 10
    counts = np.bincount(ds.answer, minlength=5)
    assert counts.min() > N / 5 * 0.6


def test_mean_colour_inside_mask_is_the_answer(ds):
    ref = COLOR_RGB.astype(np.float64)
    for i in range(len(ds)):
        mask = ds.target_mask(i)
        assert mask.sum() >= 8
        mean = ds.images[ds.image_index[i]][mask].astype(np.float64).mean(axis=0)
        assert np.argmin(((ref - mean) ** 2).sum(axis=1)) == ds.answer[i], i


def test_masks_disjoint_and_bounding_boxes_do_not_overlap(ds):
    for k in range(ds.num_images):
        inst = ds.instances[k]
        boxes = [_bbox(inst == i) for i in range(1, int(inst.max()) + 1)]
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                y0, y1, x0, x1 = boxes[a]
                v0, v1, u0, u1 = boxes[b]
                apart = y1 + DIGIT_GAP <= v0 or v1 + DIGIT_GAP <= y0 or x1 + DIGIT_GAP <= u0 or u1 + DIGIT_GAP <= x0
                assert apart, (k, a + 1, b + 1)


def test_scales(ds):
    lo, hi = SCALE_RANGE
    assert ds.scale.min() >= lo and ds.scale.max() <= hi
    hist, _ = np.histogram(ds.scale, bins=np.linspace(lo, hi, 6))
    assert hist.min() >= 0.04 * N, hist  # every scale bin of the paper's analysis is populated
    # the digit is drawn at round(28 * scale) px: its mask spans most of that (MNIST ink is ~20 of 28 px)
    for i in range(len(ds)):
        y0, y1, x0, x1 = _bbox(ds.target_mask(i))
        side = np.floor(28 * ds.scale[i] + 0.5)
        assert 0.35 <= max(y1 - y0, x1 - x0) / side <= 0.9, i


def test_colour_noise_sd_10(mref):
    """At a digit's brightest pixel the opacity is ~1, so that pixel is the digit's noisy colour."""
    dev = []
    for i in range(len(mref)):
        px = mref.images[mref.image_index[i]][mref.target_mask(i)].astype(np.int64)
        dev.append(px[px.sum(axis=1).argmax()] - COLOR_RGB[mref.answer[i]].astype(np.int64))
    dev = np.asarray(dev)
    assert np.all(np.abs(dev.mean(axis=0)) < 3)
    assert np.all((dev.std(axis=0) > 8) & (dev.std(axis=0) < 13)), dev.std(axis=0)


def test_mref_mask_is_exactly_the_visible_pixels(mref):
    """MREF pixel = colour * opacity: inside a digit's box, mask pixels (opacity >= 1/2) are never dimmer than the
    other pixels (opacity < 1/2), and only this digit is drawn there."""
    img_all, inst_all = mref.images.astype(np.int64), mref.instances
    outside = img_all.max(axis=3)[inst_all == 0]
    assert outside.max() <= (MASK_THRESHOLD * 255) // 255  # fringes are dimmer than half of any colour
    for i in range(len(mref)):
        k, t = mref.image_index[i], mref.target[i]
        img, inst = img_all[k], inst_all[k]
        mask = inst == t
        darkest_in_mask = img[mask].max(axis=1).min()
        assert darkest_in_mask >= 0.45 * img[mask].max()
        y0, y1, x0, x1 = _bbox(mask)
        box_img, box_inst = img[y0:y1, x0:x1], inst[y0:y1, x0:x1]
        assert box_img.max(axis=2)[box_inst == 0].max(initial=0) <= darkest_in_mask
        assert np.all(np.isin(box_inst, (0, t))), "another digit inside this digit's box"


def test_mdist_distractors_outside_masks():
    mdist = make_dataset("mdist", "test", 200, seed=1, cache_dir=None)
    for k in range(mdist.num_images):
        bright_free = (mdist.images[k].max(axis=2) > 150) & (mdist.instances[k] == 0)
        assert bright_free.sum() > 20, "MDIST distractors are visible and belong to no mask"


def test_mbg_backgrounds_are_photographs():
    mbg = make_dataset("mbg", "test", 200, seed=1, cache_dir=None)
    bg_means = []
    for k in range(mbg.num_images):
        free = mbg.instances[k] == 0
        px = mbg.images[k][free].astype(np.float64)
        assert (px.max(axis=1) > 0).mean() > 0.5, "background is not black"
        assert px.std() > 3, "background is not flat"
        bg_means.append(px.mean())
    assert np.std(bg_means) > 5, "crops differ between images"


def test_splits_and_seeds_differ(mref):
    other_seed = make_dataset("mref", "val", N, seed=6, cache_dir=None)
    other_split = make_dataset("mref", "train", N, seed=5, cache_dir=None)
    assert not np.array_equal(mref.images[:10], other_seed.images[:10])
    assert not np.array_equal(mref.images[:10], other_split.images[:10])


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(name="mnist", split="train", num_examples=10), ValueError),
        (dict(name="mref", split="dev", num_examples=10), ValueError),
        (dict(name="mref", split="train", num_examples=0), ValueError),
        (dict(name="mref", split="train", num_examples=-5), ValueError),
        (dict(name="mref", split="train", num_examples=2.5), TypeError),
        (dict(name="mref", split="train", num_examples=10, seed=-1), ValueError),
        (dict(name="mref", split="train", num_examples=10, mnist_dir="/nonexistent/mnist"), FileNotFoundError),
        (dict(name="mref", split="train", num_examples=10, clear_border=-1), ValueError),
        (dict(name="mref", split="train", num_examples=10, clear_border=21), ValueError),
        (dict(name="mref", split="train", num_examples=10, clear_border=2.0), ValueError),
    ],
)
def test_bad_arguments(kwargs, exc):
    with pytest.raises(exc) as info:
        make_dataset(**kwargs, cache_dir=None)
    assert str(info.value)


def test_num_examples_exact_small():
    for n in (1, 5, 6, 13):
        ds = make_dataset("mref", "train", n, cache_dir=None)
        assert len(ds) == n and ds.num_images == int(ds.image_index.max()) + 1
        ds.validate()


@pytest.mark.parametrize("name", ["mref", "mdist"])
def test_clear_border_keeps_every_digit_off_the_bottom_and_right_edges(name, tmp_path):
    """With clear_border=6 no digit pixel lies in the last 6 rows or columns (the reference CNN's blind band); by
    default about a third of the digits reach into it. The option changes the cache key and the metadata, and the
    default dataset is the one the cache held before."""
    from pan.models.backbone import IMAGE_SIZE, VISIBLE_EXTENT

    band = IMAGE_SIZE - VISIBLE_EXTENT
    assert band == 6
    plain = make_dataset(name, "train", N, seed=3, cache_dir=tmp_path)
    clear = make_dataset(name, "train", N, seed=3, cache_dir=tmp_path, clear_border=band)

    def in_band(instances: np.ndarray) -> np.ndarray:  # per image: does any digit reach into the band
        return (instances[:, -band:, :] > 0).any((1, 2)) | (instances[:, :, -band:] > 0).any((1, 2))

    assert not in_band(clear.instances).any()
    if name == "mref":  # nothing else is drawn on MREF's black canvas
        assert not clear.images[:, -band:, :].any() and not clear.images[:, :, -band:].any()
    assert in_band(plain.instances).mean() > 0.5  # most images have a digit there by default
    clear.validate()
    assert clear.meta["clear_border"] == band and "clear_border" not in plain.meta
    assert len(list(tmp_path.rglob("*.npz"))) == 2  # two cache entries
    again = make_dataset(name, "train", N, seed=3, cache_dir=tmp_path)
    assert np.array_equal(again.images, plain.images)
    assert np.array_equal(make_dataset(name, "train", N, seed=3, cache_dir=None).images, plain.images)
