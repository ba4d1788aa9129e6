"""Determinism and the on-disk cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import pan.data.generate as generate
from pan.data import DEFAULT_CACHE_DIR, PanDataset, make_dataset

# sha256 over the seven arrays of make_dataset("mref", "train", 60, seed=11): pins the exact output, so a change in
# generation (or a platform that would draw differently) is caught. Update together with FORMAT_VERSION.
GOLDEN_MREF_60 = "3bb8826352ac211908a5d699387bd86ee6b926b103c58e3bc7172f83e9fa68a0"


def _digest(ds: PanDataset) -> str:
    h = hashlib.sha256()
    for key, arr in ds.arrays().items():
        h.update(key.encode())
        h.update(str(arr.dtype).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _same(a: PanDataset, b: PanDataset) -> bool:
    pairs = zip(a.arrays().values(), b.arrays().values(), strict=True)
    return all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in pairs)


def test_golden_output():
    assert _digest(make_dataset("mref", "train", 60, seed=11, cache_dir=None)) == GOLDEN_MREF_60


@pytest.mark.parametrize("name", ["mref", "mdist", "mbg"])
def test_deterministic(name):
    a = make_dataset(name, "train", 120, seed=2, cache_dir=None)
    b = make_dataset(name, "train", 120, seed=2, cache_dir=None)
    assert _same(a, b)


def test_independent_of_worker_count():
    n = 1200  # several chunks of generate.CHUNK_IMAGES images
    one = make_dataset("mdist", "test", n, seed=4, cache_dir=None, workers=1)
    assert one.num_images > 2 * generate.CHUNK_IMAGES
    two = make_dataset("mdist", "test", n, seed=4, cache_dir=None, workers=2)
    assert _same(one, two)


def test_cache_reuse(tmp_path, monkeypatch):
    first = make_dataset("mref", "train", 80, seed=1, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(generate, "_generate", boom)
    second = make_dataset("mref", "train", 80, seed=1, cache_dir=tmp_path)
    assert _same(first, second)
    assert second.meta["seed"] == 1 and second.meta["name"] == "mref"


def test_cache_keyed_by_every_argument(tmp_path, monkeypatch):
    base = dict(name="mref", split="train", num_examples=30, seed=0)
    variants = [
        base,
        {**base, "name": "mdist"},
        {**base, "split": "val"},
        {**base, "num_examples": 31},
        {**base, "seed": 1},
    ]
    for kwargs in variants:
        make_dataset(**kwargs, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == len(variants)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_recovers_from_damaged_cache_file(tmp_path, damage):
    fresh = make_dataset("mbg", "val", 70, seed=3, cache_dir=None)
    make_dataset("mbg", "val", 70, seed=3, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        pos = len(data) // 3
        data = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]
    elif damage == "empty":
        data = b""
    else:
        data = b"not a zip file at all" * 10
    path.write_bytes(data)
    with pytest.warns(UserWarning, match="damaged dataset cache"):
        again = make_dataset("mbg", "val", 70, seed=3, cache_dir=tmp_path)
    assert _same(fresh, again)
    assert PanDataset.load(path).meta["num_examples"] == 70  # rewritten, now valid


def test_leftover_temp_file_is_ignored(tmp_path):
    (tmp_path / ".mref_train_40_s0_deadbeef.abc.tmp").write_bytes(b"half written")
    ds = make_dataset("mref", "train", 40, cache_dir=tmp_path)
    assert len(ds) == 40 and len(list(tmp_path.glob("*.npz"))) == 1


def test_default_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "envcache"))
    make_dataset("mref", "test", 25, cache_dir=DEFAULT_CACHE_DIR)
    make_dataset("mref", "test", 26)  # the default is DEFAULT_CACHE_DIR
    assert len(list((tmp_path / "envcache").glob("*.npz"))) == 2


def test_no_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    make_dataset("mref", "test", 25, cache_dir=None)
    assert not any(Path(tmp_path).rglob("*.npz"))


def test_save_load_roundtrip(tmp_path):
    ds = make_dataset("mdist", "train", 50, cache_dir=None)
    ds.save(tmp_path / "x.npz")
    back = PanDataset.load(tmp_path / "x.npz")
    assert _same(ds, back) and back.meta == ds.meta
