"""Visual Genome attribute prediction (paper §4.2) from a local copy: one example = (image, query object class,
multi-label attribute target, object box).

Expected layout of `data_dir` (the standard release; nothing is downloaded):
    image_data.json    [{"image_id", "width", "height", ...}, ...]
    objects.json       [{"image_id", "objects": [{"object_id", "x", "y", "w", "h", "names": [...]}, ...]}, ...]
    attributes.json    [{"image_id", "attributes": [{"object_id", "x", "y", "w", "h", "names": [...],
                                                    "attributes": [...]}, ...]}, ...]
    VG_100K/<image_id>.jpg and/or VG_100K_2/<image_id>.jpg

Vocabularies: object classes and attributes that occur more than `min_count` times (the paper's 100 gives 827 and
749), names lower-cased and stripped. Images holding at least one usable example are split by a seeded permutation
in the paper's proportions 43,337 / 8,667 / 34,670 (train / val / test).

The JSON is parsed once into a cached numpy index (pan.data.vg_index); a second reader of the same copy, for any
split, --min-count or seed, starts from that cache. Examples are built on access from arrays, not held as objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pan.data.cache import DEFAULT_CACHE_DIR
from pan.data.vg_index import VGIndex, load_index

PAPER_SPLIT = {"train": 43_337, "val": 8_667, "test": 34_670}
IMAGE_DIRS = ("VG_100K", "VG_100K_2")


@dataclass(frozen=True)
class VGExample:
    """One query: image `image_id` (file `path`), object class index `query`, attribute indices `attributes`,
    object box (x, y, w, h) in pixels of the original image of size (width, height)."""

    image_id: int
    path: Path
    query: int
    attributes: tuple[int, ...]
    box: tuple[float, float, float, float]
    width: int
    height: int


def _vocabulary(names: list[str], counts: np.ndarray, min_count: int) -> np.ndarray:
    """Indices into `names` of those seen more than min_count times, most frequent first (ties alphabetical)."""
    kept = np.flatnonzero(counts > min_count)
    return np.array(sorted(kept.tolist(), key=lambda i: (-int(counts[i]), names[i])), dtype=np.int64)


def _remap(ids: np.ndarray, kept: np.ndarray, size: int) -> np.ndarray:
    """ids into a table of `size` names -> their position in `kept`, or -1 where not kept."""
    table = np.full(size, -1, dtype=np.int64)
    table[kept] = np.arange(len(kept))
    return table[ids]


class VGExamples(Sequence):
    """The examples of a split as arrays; item i is a VGExample. image_ids [N], query [N], box [N, 4], width and
    height [N], attributes of example i: values[offsets[i]:offsets[i + 1]] (sorted)."""

    def __init__(self, root: Path, image_ids, query, box, width, height, offsets, values):
        self.root, self.image_ids, self.query, self.box = root, image_ids, query, box
        self.width, self.height, self.offsets, self.values = width, height, offsets, values

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        image_id = int(self.image_ids[i])
        return VGExample(image_id, image_path(self.root, image_id), int(self.query[i]),
                         tuple(int(a) for a in self.values[self.offsets[i]:self.offsets[i + 1]]),
                         tuple(float(v) for v in self.box[i]), int(self.width[i]), int(self.height[i]))


def image_path(root: Path, image_id: int) -> Path:
    """VG_100K/<id>.jpg or VG_100K_2/<id>.jpg, whichever exists (else the first: reported when it is read)."""
    for folder in IMAGE_DIRS:
        path = root / folder / f"{image_id}.jpg"
        if path.is_file():
            return path
    return root / IMAGE_DIRS[0] / f"{image_id}.jpg"


class VisualGenome:
    """The examples of one split. `classes` and `attributes` are the vocabularies (shared by every split).
    cache_dir: where the parsed index is kept (pan.data.vg_index; None: parse every time)."""

    def __init__(self, data_dir: str | Path, split: str, *, min_count: int = 100, seed: int = 0,
                 cache_dir: object = DEFAULT_CACHE_DIR):
        if split not in PAPER_SPLIT:
            raise ValueError(f"split must be one of {tuple(PAPER_SPLIT)}, got {split!r}")
        index = load_index(data_dir, cache_dir=cache_dir)
        root = Path(data_dir).expanduser()
        if not any((root / d).is_dir() for d in IMAGE_DIRS):
            raise ValueError(f"--data-dir {root}: no image folder {' or '.join(d + '/' for d in IMAGE_DIRS)} (a "
                             "Visual Genome copy keeps its images there, as <image_id>.jpg)")
        class_ids = _vocabulary(index.class_names, index.class_counts, min_count)
        attribute_ids = _vocabulary(index.attribute_names, index.attribute_counts, min_count)
        self.classes = [index.class_names[i] for i in class_ids]
        self.attributes = [index.attribute_names[i] for i in attribute_ids]
        self.split = split

        query = _remap(index.obj_class, class_ids, len(index.class_names))
        counts = np.diff(index.attr_offsets)
        owner = np.repeat(np.arange(len(query)), counts)
        mapped = _remap(index.attr_ids, attribute_ids, len(index.attribute_names))
        usable = (query >= 0) & (np.bincount(owner[mapped >= 0], minlength=len(query)) > 0)

        ids = np.unique(index.obj_image[usable])
        order = ids[np.random.default_rng(seed).permutation(len(ids))]
        total = sum(PAPER_SPLIT.values())
        n_train = round(len(ids) * PAPER_SPLIT["train"] / total)
        n_val = round(len(ids) * PAPER_SPLIT["val"] / total)
        chosen = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                  "test": order[n_train + n_val:]}[split]
        self.image_ids = sorted(int(i) for i in chosen)
        self.examples = self._examples(index, root, usable & np.isin(index.obj_image, chosen), query, owner, mapped,
                                       len(attribute_ids))

    @staticmethod
    def _examples(index: VGIndex, root: Path, selected, query, owner, mapped, num_attributes: int) -> VGExamples:
        rows = np.flatnonzero(selected)
        rows = rows[np.argsort(index.obj_image[rows], kind="stable")]  # by image id, file order within an image
        position = np.full(len(query), -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        keep = (mapped >= 0) & (position[owner] >= 0)
        radix = max(num_attributes, 1)
        pairs = np.unique(position[owner[keep]] * radix + mapped[keep])  # sorted by (example, attribute), no repeats
        example, values = np.divmod(pairs, radix)
        offsets = np.concatenate([[0], np.cumsum(np.bincount(example, minlength=len(rows)))])
        image_ids = index.obj_image[rows]
        by_id = np.argsort(index.image_ids, kind="stable")
        meta = by_id[np.searchsorted(index.image_ids, image_ids, sorter=by_id)] if len(rows) else rows
        return VGExamples(root, image_ids, query[rows], index.obj_box[rows], index.widths[meta],
                          index.heights[meta], offsets, values)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def queries(self) -> np.ndarray:
        """Object class index [N] of every example."""
        return self.examples.query

    def targets(self) -> np.ndarray:
        """Multi-hot attribute vectors [N, A] (uint8) of every example."""
        e = self.examples
        y = np.zeros((len(e), len(self.attributes)), dtype=np.uint8)
        y[np.repeat(np.arange(len(e)), np.diff(e.offsets)), e.values] = 1
        return y

    def target(self, index: int) -> np.ndarray:
        """Multi-hot attribute vector [A] (uint8) of example `index`."""
        e = self.examples
        y = np.zeros(len(self.attributes), dtype=np.uint8)
        y[e.values[e.offsets[index]:e.offsets[index + 1]]] = 1
        return y
