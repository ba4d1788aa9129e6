"""The cached Visual Genome index (pan.data.vg_index): parsed once, reused while the JSON files keep their size and
mtime, rebuilt on any change, on another format version or data dir, or damage; never unpickled; the streaming
JSON reader agrees with json.load at any chunk size."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from pan.data import vg_index
from pan.data.vg_index import index_path, iter_records, load_index
from pan.data.visual_genome import VisualGenome
from tests.real_image_fixtures import write_vg


def _load(root, cache):
    return load_index(root, cache_dir=cache, min_bytes=0)


def _same(a, b):
    assert a.class_names == b.class_names and a.attribute_names == b.attribute_names
    for name in vg_index._ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _only_file(cache):
    files = [p for p in cache.iterdir() if p.suffix == ".npz"]
    assert len(files) == 1, files
    return files[0]


def test_second_load_comes_from_the_cache_and_gives_the_same_examples(tmp_path, monkeypatch):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    first = _load(root, cache)
    assert not first.from_cache and _only_file(cache) == index_path(cache, root.resolve())
    second = _load(root, cache)
    assert second.from_cache
    _same(first, second)
    monkeypatch.setattr(vg_index, "CACHE_MIN_BYTES", 0)
    for split in ("train", "val", "test"):
        cached = VisualGenome(root, split, min_count=1, seed=3, cache_dir=cache)
        fresh = VisualGenome(root, split, min_count=1, seed=3, cache_dir=None)
        assert list(cached.examples) == list(fresh.examples) and cached.classes == fresh.classes


def test_small_sources_are_not_cached_by_default(tmp_path):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    assert not load_index(root, cache_dir=cache).from_cache
    assert not cache.exists()


@pytest.mark.parametrize("change", ["size", "mtime"])
def test_a_changed_source_rebuilds_the_index(tmp_path, change):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    _load(root, cache)
    path = root / "attributes.json"
    data = json.loads(path.read_text())
    data[0]["attributes"][0]["attributes"] = ["brown", "small"]  # "black" -> "brown": same length
    stat = path.stat()
    text = json.dumps(data) + ("\n" if change == "size" else "")
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + (10**9 if change == "mtime" else 0)))
    assert (path.stat().st_size != stat.st_size) == (change == "size")
    index = _load(root, cache)
    assert not index.from_cache and "brown" in index.attribute_names
    assert _load(root, cache).from_cache  # and the rebuilt index is cached in turn


def test_an_index_of_another_version_or_data_dir_is_rebuilt(tmp_path, monkeypatch):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    _load(root, cache)
    monkeypatch.setattr(vg_index, "INDEX_VERSION", vg_index.INDEX_VERSION + 1)
    assert not _load(root, cache).from_cache
    assert _load(root, cache).from_cache
    other = write_vg(tmp_path / "other", {7: [("bird", ["red", "red"], (1, 2, 3, 4))]})
    for name in vg_index.SOURCES:  # same sizes and mtimes as the first copy's, other contents
        os.utime(other / name, ns=(0, (root / name).stat().st_mtime_ns))
    index_path(cache, root.resolve()).replace(index_path(cache, other.resolve()))
    index = _load(other, cache)
    assert not index.from_cache and index.class_names == ["bird"]


def test_a_damaged_index_is_rebuilt_with_a_warning(tmp_path):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    good = _load(root, cache)
    path = _only_file(cache)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(UserWarning, match="ignoring damaged Visual Genome index cache"):
        index = _load(root, cache)
    assert not index.from_cache
    _same(index, good)


def test_a_cache_holding_pickled_objects_is_never_unpickled(tmp_path):
    root, cache = write_vg(tmp_path / "vg"), tmp_path / "cache"
    _load(root, cache)
    path = _only_file(cache)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    flag = tmp_path / "unpickled"
    payload = np.empty(1, dtype=object)
    payload[0] = _Unpickles(str(flag))
    arrays["class_names"] = payload
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert pickle.loads(pickle.dumps(_Unpickles(str(tmp_path / "probe")))) is None and (tmp_path / "probe").exists()
    with pytest.warns(UserWarning, match="ignoring damaged"):
        index = _load(root, cache)
    assert not flag.exists(), "the cache was unpickled"
    assert not index.from_cache and "cat" in index.class_names


class _Unpickles:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    open(path, "w").close()


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 22])
def test_streaming_reader_agrees_with_json_load_at_any_chunk_size(tmp_path, monkeypatch, chunk):
    records = [{"image_id": i, "names": ["caf\u00e9", " x "], "v": [1.5, None, True], "s": "]}, {"} for i in range(9)]
    path = tmp_path / "r.json"
    path.write_text(" \n[" + ",\n ".join(json.dumps(r, ensure_ascii=False) for r in records) + "] \n",
                    encoding="utf-8")
    monkeypatch.setattr(vg_index, "_CHUNK", chunk)
    assert [r for _, r in iter_records(path, "test")] == records
    (tmp_path / "empty.json").write_text("[ ]")
    assert list(iter_records(tmp_path / "empty.json", "test")) == []
