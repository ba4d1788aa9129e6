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
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def _read_json(path: Path, what: str) -> list:
    if not path.is_file():
        raise ValueError(f"{path}: missing; a Visual Genome --data-dir holds image_data.json, objects.json and "
                         "attributes.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ValueError(f"{path}: expected a JSON list of {what} records")
    return data


def _name(text) -> str:
    return str(text).strip().lower()


def _field(record: dict, key: str, path: Path):
    try:
        return record[key]
    except KeyError:
        raise ValueError(f"{path}: a record lacks the field {key!r}") from None


def _vocabulary(counts: Counter, min_count: int) -> list[str]:
    """Names seen more than min_count times, most frequent first (ties alphabetical)."""
    return sorted((n for n, c in counts.items() if c > min_count), key=lambda n: (-counts[n], n))


class VisualGenome:
    """The examples of one split. `classes` and `attributes` are the vocabularies (shared by every split)."""

    def __init__(self, data_dir: str | Path, split: str, *, min_count: int = 100, seed: int = 0):
        root = Path(data_dir)
        if not root.is_dir():
            raise ValueError(f"--data-dir {root}: no such directory")
        if split not in PAPER_SPLIT:
            raise ValueError(f"split must be one of {tuple(PAPER_SPLIT)}, got {split!r}")
        images = {int(_field(r, "image_id", root / "image_data.json")): r
                  for r in _read_json(root / "image_data.json", "image")}
        objects_path, attributes_path = root / "objects.json", root / "attributes.json"
        class_counts = Counter(_name(n) for r in _read_json(objects_path, "per-image object")
                               for o in _field(r, "objects", objects_path) for n in _field(o, "names", objects_path))
        per_image = _read_json(attributes_path, "per-image attribute")
        attribute_counts = Counter(_name(a) for r in per_image for o in _field(r, "attributes", attributes_path)
                                   for a in o.get("attributes") or ())
        self.classes = _vocabulary(class_counts, min_count)
        self.attributes = _vocabulary(attribute_counts, min_count)
        class_index = {n: i for i, n in enumerate(self.classes)}
        attribute_index = {n: i for i, n in enumerate(self.attributes)}

        by_image: dict[int, list[VGExample]] = {}
        for record in per_image:
            image_id = int(_field(record, "image_id", attributes_path))
            if image_id not in images:
                raise ValueError(f"{attributes_path}: image {image_id} is not in {root / 'image_data.json'}")
            meta = images[image_id]
            for obj in _field(record, "attributes", attributes_path):
                names = [_name(n) for n in _field(obj, "names", attributes_path)]
                attrs = sorted({attribute_index[_name(a)] for a in obj.get("attributes") or ()
                                if _name(a) in attribute_index})
                if not names or names[0] not in class_index or not attrs:
                    continue
                box = tuple(float(_field(obj, k, attributes_path)) for k in ("x", "y", "w", "h"))
                by_image.setdefault(image_id, []).append(VGExample(
                    image_id, self._image_path(root, image_id), class_index[names[0]], tuple(attrs), box,
                    int(meta.get("width", 0)), int(meta.get("height", 0))))
        ids = np.array(sorted(by_image), dtype=np.int64)
        order = ids[np.random.default_rng(seed).permutation(len(ids))]
        total = sum(PAPER_SPLIT.values())
        n_train = round(len(ids) * PAPER_SPLIT["train"] / total)
        n_val = round(len(ids) * PAPER_SPLIT["val"] / total)
        chosen = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                  "test": order[n_train + n_val:]}[split]
        self.image_ids = sorted(int(i) for i in chosen)
        self.examples = [e for i in self.image_ids for e in by_image[i]]
        self.split = split

    @staticmethod
    def _image_path(root: Path, image_id: int) -> Path:
        for folder in IMAGE_DIRS:
            path = root / folder / f"{image_id}.jpg"
            if path.is_file():
                return path
        return root / IMAGE_DIRS[0] / f"{image_id}.jpg"  # reported when the image is read

    def __len__(self) -> int:
        return len(self.examples)

    def target(self, index: int) -> np.ndarray:
        """Multi-hot attribute vector [A] (uint8) of example `index`."""
        y = np.zeros(len(self.attributes), dtype=np.uint8)
        y[list(self.examples[index].attributes)] = 1
        return y
