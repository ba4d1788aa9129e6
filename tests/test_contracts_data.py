"""Data contracts that a look at colours and counts cannot see: the query names the class of the digit drawn at the
target (checked with IDX digits whose shape encodes their class), and the dataset cache is keyed by what the data
was made from (IDX files changed in place, the format version, a file planted under another key's name)."""

from __future__ import annotations

import numpy as np
import pytest

import pan.data.generate as generate
from pan.data import make_dataset
from pan.data.render import scaled_size
from tests.test_data_mnist import write_idx

HEIGHT = 24


def _shape_digits(per_class: int, ink: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Class c is a solid HEIGHT x (4 + 2c) px rectangle, centred in 28 x 28: the width says the class."""
    labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
    images = np.zeros((labels.size, 28, 28), np.uint8)
    for k, c in enumerate(labels):
        w = 4 + 2 * int(c)
        images[k, (28 - HEIGHT) // 2: (28 + HEIGHT) // 2, (28 - w) // 2: (28 - w) // 2 + w] = ink
    return images, labels


def _write_pools(directory, ink: int = 255):
    directory.mkdir(exist_ok=True)
    for prefix, per_class in (("train", 4), ("t10k", 2)):
        images, labels = _shape_digits(per_class, ink)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory


@pytest.mark.parametrize("name", ["mref", "mdist"])
def test_the_query_is_the_class_of_the_target_digit(tmp_path, name):
    data = make_dataset(name, "train", 300, seed=7, mnist_dir=_write_pools(tmp_path / "idx"), cache_dir=None)
    checked = 0
    for i in range(len(data)):
        side = scaled_size(28, float(data.scale[i]))
        if side < 40:  # at small sizes a 2 px class step is under 3 output pixels: too close to call
            continue
        ys, xs = np.nonzero(data.target_mask(i))
        height, width = (ys.max() - ys.min() + 1) * 28 / side, (xs.max() - xs.min() + 1) * 28 / side
        assert abs(height - HEIGHT) <= 1.5, (i, height)
        assert round((width - 4) / 2) == data.query[i], f"example {i}: query {data.query[i]}, digit width {width:.1f}"
        checked += 1
    assert checked >= 60


def test_a_cache_made_from_other_digit_files_is_not_reused(tmp_path, monkeypatch):
    """The IDX files are rewritten in place (same names, other pixels): the cache must miss and regenerate."""
    idx, cache = _write_pools(tmp_path / "idx"), tmp_path / "cache"
    first = make_dataset("mref", "train", 40, seed=1, mnist_dir=idx, cache_dir=cache)
    assert first.images.max() > 200
    _write_pools(idx, ink=150)
    second = make_dataset("mref", "train", 40, seed=1, mnist_dir=idx, cache_dir=cache)
    assert second.images.max() < 175, "the cached images of the old digit files were returned"
    assert len(list(cache.glob("*.npz"))) == 2
    assert first.meta["mnist_fingerprint"] != second.meta["mnist_fingerprint"]
    # unchanged files: a hit (no regeneration)
    _write_pools(idx, ink=150)
    calls = []
    real = generate._generate
    monkeypatch.setattr(generate, "_generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    make_dataset("mref", "train", 40, seed=1, mnist_dir=idx, cache_dir=cache)
    assert calls == []


def test_a_new_format_version_misses_the_cache(tmp_path, monkeypatch):
    make_dataset("mref", "train", 30, seed=0, cache_dir=tmp_path)
    monkeypatch.setattr(generate, "FORMAT_VERSION", generate.FORMAT_VERSION + 1)
    calls = []
    real = generate._generate
    monkeypatch.setattr(generate, "_generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    data = make_dataset("mref", "train", 30, seed=0, cache_dir=tmp_path)
    assert calls == [1] and data.meta["format_version"] == generate.FORMAT_VERSION
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_a_valid_file_under_another_keys_name_is_not_trusted(tmp_path):
    """seed 0's (valid) cache file copied to the name seed 1 would read: rejected as damaged, seed 1 regenerated."""
    make_dataset("mref", "train", 30, seed=0, cache_dir=tmp_path)
    (seed0,) = tmp_path.glob("*.npz")
    make_dataset("mref", "train", 30, seed=1, cache_dir=tmp_path)
    (seed1,) = set(tmp_path.glob("*.npz")) - {seed0}
    seed1.write_bytes(seed0.read_bytes())
    with pytest.warns(UserWarning, match="damaged dataset cache"):
        again = make_dataset("mref", "train", 30, seed=1, cache_dir=tmp_path)
    fresh = make_dataset("mref", "train", 30, seed=1, cache_dir=None)
    assert again.meta["seed"] == 1 and np.array_equal(again.images, fresh.images)
    assert np.array_equal(again.query, fresh.query)
