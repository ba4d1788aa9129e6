"""Compact index of a Visual Genome copy, parsed once from its JSON and cached as plain numpy arrays.

    index = load_index(data_dir)            # parse image_data.json, objects.json, attributes.json, or read the cache
    index.class_names, index.class_counts   # every object name (lower-cased, stripped), counted over objects.json
    index.obj_image [M], obj_class [M], obj_box [M, 4] (x, y, w, h), attr_offsets [M+1], attr_ids [K]

One row per object of attributes.json that has a name and at least one attribute (the only ones that can become
examples, whatever the vocabulary): its image id, its first name, its box, and its attribute names (CSR:
attr_ids[attr_offsets[m]:attr_offsets[m + 1]], duplicates removed). Vocabularies and splits are cut from these
arrays by pan.data.visual_genome, so one index serves every --min-count and seed.

The JSON is read one record at a time (a release of hundreds of MB never sits in memory as Python objects), and
every field used is type-checked: a bad record stops with one line naming the file, the record and the field.

Cache: `<cache_dir>/vg-index-<hash of the resolved data_dir>.npz`, written atomically (temp file + os.replace). It
is used only when its format version and the size and mtime of all three JSON files match; otherwise (or when it
is damaged) it is rebuilt. It is read with allow_pickle=False: it holds numbers and UTF-8 bytes only. Sources
smaller than CACHE_MIN_BYTES in total parse in well under a second and are not cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pan.data.cache import DEFAULT_CACHE_DIR, atomic_write, resolve_cache_dir

INDEX_VERSION = 1
SOURCES = ("image_data.json", "objects.json", "attributes.json")
CACHE_MIN_BYTES = 4 << 20
_CHUNK = 1 << 22
_WS = re.compile(r"[ \t\n\r]*")
_ARRAYS = ("image_ids", "widths", "heights", "class_counts", "attribute_counts", "obj_image", "obj_class",
           "obj_box", "attr_offsets", "attr_ids")


@dataclass
class VGIndex:
    """Images (image_ids, widths, heights [I]), name tables, and one row per candidate object (see module doc)."""

    image_ids: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    class_names: list[str]
    class_counts: np.ndarray
    attribute_names: list[str]
    attribute_counts: np.ndarray
    obj_image: np.ndarray
    obj_class: np.ndarray
    obj_box: np.ndarray
    attr_offsets: np.ndarray
    attr_ids: np.ndarray
    from_cache: bool = False


# ---- reading and checking records ----

def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _layout_error(root: Path, name: str) -> ValueError:
    hint = ""
    if (root / "VOCdevkit").is_dir():
        hint = " (this looks like a VOC 2007 copy: use --dataset voc07)"
    else:
        nested = sorted(p.parent for p in root.glob(f"*/{name}"))
        if nested:
            hint = f" (found one in {nested[0]}: give that folder as --data-dir)"
    return ValueError(f"{root / name}: missing; a Visual Genome --data-dir holds {', '.join(SOURCES)} and the "
                      f"images in VG_100K/ (and VG_100K_2/){hint}")


def _whole_file_error(path: Path, what: str) -> ValueError:
    """The error for a file that does not start with '[': invalid JSON, or valid JSON that is not a list."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return ValueError(f"{path}: not valid JSON ({err})")
    return ValueError(f"{path}: expected a JSON list of {what} records, got a {type(data).__name__}")


def iter_records(path: Path, what: str):
    """Yield (index, record) for each item of the JSON list in `path`, one at a time; ValueError naming the file
    if it is not valid JSON, not a list, or an item is not an object."""
    decode = json.JSONDecoder().raw_decode
    try:
        handle = open(path, encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    with handle:
        state = {"buf": "", "pos": 0, "base": 0, "eof": False}

        def fill() -> None:
            try:
                data = handle.read(_CHUNK)
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not valid JSON ({err})") from None
            state["eof"] = not data
            state["base"] += state["pos"]
            state["buf"], state["pos"] = state["buf"][state["pos"]:] + data, 0

        def skip_ws() -> str:
            """Advance past white space; the next character, or '' at the end of the file."""
            while True:
                state["pos"] = _WS.match(state["buf"], state["pos"]).end()
                if state["pos"] < len(state["buf"]) or state["eof"]:
                    return state["buf"][state["pos"]:state["pos"] + 1]
                fill()

        def bad(message: str) -> ValueError:
            return ValueError(f"{path}: not valid JSON ({message} at character {state['base'] + state['pos']})")

        fill()
        if skip_ws() != "[":
            raise _whole_file_error(path, what)
        state["pos"] += 1
        index = 0
        closed = skip_ws() == "]"
        if closed:
            state["pos"] += 1
        while not closed:
            while True:
                try:
                    value, end = decode(state["buf"], state["pos"])
                    break
                except json.JSONDecodeError as err:
                    if state["eof"]:
                        state["pos"] = err.pos
                        raise bad(err.msg) from None
                    fill()
            if not isinstance(value, dict):
                raise ValueError(f"{path}: expected a JSON list of {what} records; item {index} is {_show(value)}")
            state["pos"] = end
            yield index, value
            index += 1
            c = skip_ws()
            if c == "]":
                state["pos"] += 1
                closed = True
            elif c == ",":
                state["pos"] += 1
                skip_ws()
            else:
                raise bad("expected ',' or ']'")
        if skip_ws():
            raise bad("extra data after the list")


class _Where:
    """Names a record (and object) in error messages: 'FILE: record 3 (image 12), object 2: ...'."""

    def __init__(self, path: Path, index: int, record: dict):
        self.path, self.index, self.record = path, index, record
        self.image = None

    def error(self, message: str, obj: int | None = None) -> ValueError:
        where = f"record {self.index}" + (f" (image {self.image})" if self.image is not None else "")
        if obj is not None:
            where += f", object {obj}"
        return ValueError(f"{self.path}: {where}: {message}")

    def field(self, container: dict, key: str, obj: int | None = None, *, required: bool = True):
        if key not in container:
            if required:
                raise self.error(f"lacks the field {key!r}", obj)
            return None
        return container[key]

    def image_id(self) -> int:
        value = self.field(self.record, "image_id")
        if not _is_int(value):
            raise self.error(f"field 'image_id' must be an integer, got {_show(value)}")
        self.image = value
        return value

    def objects(self, key: str) -> list:
        value = self.field(self.record, key)
        if not isinstance(value, list):
            raise self.error(f"field {key!r} must be a list of objects, got {_show(value)}")
        for k, obj in enumerate(value):
            if not isinstance(obj, dict):
                raise self.error(f"must be a JSON object, got {_show(obj)}", k)
        return value

    def strings(self, obj: dict, key: str, k: int, *, required: bool = True) -> list[str]:
        value = self.field(obj, key, k, required=required)
        if value is None and not required:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(f"field {key!r} must be a list of strings, got {_show(value)}", k)
        return value

    def number(self, obj: dict, key: str, k: int) -> float:
        value = self.field(obj, key, k)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(f"field {key!r} must be a finite number, got {_show(value)}", k)
        return float(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name(text: str) -> str:
    return text.strip().lower()


class _Names:
    """Raw name -> code in a table of normalised names (lower-cased, stripped), each with a count."""

    def __init__(self):
        self.table: dict[str, int] = {}
        self.raw: dict[str, int] = {}
        self.counts: list[int] = []

    def code(self, raw: str) -> int:
        c = self.raw.get(raw)
        if c is None:
            name = _name(raw)
            c = self.table.get(name)
            if c is None:
                c = self.table[name] = len(self.counts)
                self.counts.append(0)
            self.raw[raw] = c
        return c


_NUMBER = (int, float)


def _fast_box(obj: dict):
    """(x, y, w, h) when all four are finite JSON numbers, else None (then the slow checks name the problem)."""
    try:
        box = (obj["x"], obj["y"], obj["w"], obj["h"])
    except KeyError:
        return None
    for v in box:
        if type(v) not in _NUMBER or v - v != 0:  # v - v is NaN for inf and NaN
            return None
    return box


def _attribute_object(where: _Where, obj, k: int):
    """Full checks of one object of attributes.json: (names, attributes, box) or ValueError."""
    if not isinstance(obj, dict):
        raise where.error(f"must be a JSON object, got {_show(obj)}", k)
    return (where.strings(obj, "names", k), where.strings(obj, "attributes", k, required=False),
            tuple(where.number(obj, key, k) for key in ("x", "y", "w", "h")))


def build_index(root: Path) -> VGIndex:
    """Parse the three JSON files of `root` (see the module doc); ValueError naming the file, record and field.
    Each record takes a fast path of exact type tests; the first that fails reruns the full checks (which name it)."""
    paths = {name: root / name for name in SOURCES}
    images: dict[int, tuple[int, int]] = {}
    for i, record in iter_records(paths["image_data.json"], "image"):
        where = _Where(paths["image_data.json"], i, record)
        image_id = where.image_id()
        size = []
        for key in ("width", "height"):
            value = record.get(key, 0)
            if not _is_int(value):
                raise where.error(f"field {key!r} must be an integer, got {_show(value)}")
            size.append(value)
        images[image_id] = (size[0], size[1])

    classes = _Names()
    for i, record in iter_records(paths["objects.json"], "per-image object"):
        objs = record.get("objects")
        if type(record.get("image_id")) is not int or type(objs) is not list:
            where = _Where(paths["objects.json"], i, record)
            where.image_id()
            objs = where.objects("objects")
        for k, obj in enumerate(objs):
            names = obj.get("names") if type(obj) is dict else None
            if type(names) is not list or not all(type(n) is str for n in names):
                where = _Where(paths["objects.json"], i, record)
                where.image_id()
                where.objects("objects")
                names = where.strings(obj, "names", k)
            for n in names:
                classes.counts[classes.code(n)] += 1

    attributes = _Names()
    obj_image, obj_class, boxes = array("q"), array("q"), array("d")
    offsets, attr_ids = array("q", [0]), array("q")
    path = paths["attributes.json"]
    for i, record in iter_records(path, "per-image attribute"):
        image_id, objs = record.get("image_id"), record.get("attributes")
        if type(image_id) is not int or type(objs) is not list or image_id not in images:
            where = _Where(path, i, record)
            image_id = where.image_id()
            if image_id not in images:
                raise where.error(f"the image is not in {paths['image_data.json']}")
            objs = where.objects("attributes")
        for k, obj in enumerate(objs):
            if type(obj) is dict:
                names, attrs, box = obj.get("names"), obj.get("attributes"), _fast_box(obj)
                if attrs is None:  # absent or null: no attributes (the release omits the field)
                    attrs = []
            if (type(obj) is not dict or type(names) is not list or type(attrs) is not list or box is None
                    or not all(type(n) is str for n in names) or not all(type(a) is str for a in attrs)):
                where = _Where(path, i, record)
                where.image_id()
                names, attrs, box = _attribute_object(where, obj, k)
            codes = set()
            for a in attrs:
                c = attributes.code(a)
                attributes.counts[c] += 1
                codes.add(c)
            if not names or not codes:
                continue
            obj_image.append(image_id)
            obj_class.append(classes.code(names[0]))
            boxes.extend(box)
            attr_ids.extend(sorted(codes))
            offsets.append(len(attr_ids))

    ids = np.fromiter(images, dtype=np.int64, count=len(images))
    sizes = np.array(list(images.values()), dtype=np.int64).reshape(-1, 2)
    box_array = np.frombuffer(boxes, dtype=np.float64).reshape(-1, 4)
    if np.array_equal(box_array.astype(np.float32).astype(np.float64), box_array):
        box_array = box_array.astype(np.float32)  # whole-pixel boxes (the release's) at half the size
    return VGIndex(
        image_ids=ids, widths=sizes[:, 0], heights=sizes[:, 1],
        class_names=list(classes.table), class_counts=np.array(classes.counts, dtype=np.int64),
        attribute_names=list(attributes.table), attribute_counts=np.array(attributes.counts, dtype=np.int64),
        obj_image=np.frombuffer(obj_image, dtype=np.int64).copy(),
        obj_class=np.frombuffer(obj_class, dtype=np.int64).astype(np.int32),
        obj_box=box_array.copy(), attr_offsets=np.frombuffer(offsets, dtype=np.int64).copy(),
        attr_ids=np.frombuffer(attr_ids, dtype=np.int64).astype(np.int32))


# ---- the cache ----

def source_stamps(root: Path) -> dict[str, list[int]]:
    """{file name: [size, mtime_ns]} of the three JSON files; ValueError naming the first that is missing."""
    stamps = {}
    for name in SOURCES:
        try:
            st = (root / name).stat()
        except OSError:
            raise _layout_error(root, name) from None
        if not (root / name).is_file():
            raise _layout_error(root, name)
        stamps[name] = [st.st_size, st.st_mtime_ns]
    return stamps


def index_path(cache_dir: Path, root: Path) -> Path:
    return cache_dir / f"vg-index-{hashlib.sha256(str(root).encode()).hexdigest()[:16]}.npz"


def _meta(root: Path, stamps: dict) -> dict:
    return {"version": INDEX_VERSION, "root": str(root), "sources": stamps}


def _encode(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _decode(arr: np.ndarray):
    return json.loads(arr.tobytes().decode())


def save_index(path: Path, index: VGIndex, meta: dict) -> None:
    """Write `index` with its `meta` to `path` atomically (numbers and UTF-8 bytes only, no pickles)."""
    arrays = {name: getattr(index, name) for name in _ARRAYS}
    arrays.update(meta=_encode(meta), class_names=_encode(index.class_names),
                  attribute_names=_encode(index.attribute_names))
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def read_index(path: Path, meta: dict) -> VGIndex | None:
    """The cached index at `path` if its meta equals `meta` (version, data dir, source sizes and mtimes), else None.
    A damaged file also gives None (with a warning); nothing is ever unpickled."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _decode(npz["meta"]) != meta:
                return None
            arrays = {name: npz[name] for name in _ARRAYS}
            names = {"class_names": _decode(npz["class_names"]), "attribute_names": _decode(npz["attribute_names"])}
        index = VGIndex(**arrays, **names, from_cache=True)
        _check_shapes(index)
    except Exception as err:  # noqa: BLE001 — any damage means: rebuild
        warnings.warn(f"ignoring damaged Visual Genome index cache {path} ({type(err).__name__}: {err})", stacklevel=3)
        return None
    return index


def _check_shapes(ix: VGIndex) -> None:
    m = len(ix.obj_image)
    ok = (len(ix.widths) == len(ix.heights) == len(ix.image_ids) and len(ix.class_counts) == len(ix.class_names)
          and len(ix.attribute_counts) == len(ix.attribute_names) and len(ix.obj_class) == m
          and ix.obj_box.shape == (m, 4) and len(ix.attr_offsets) == m + 1 and ix.attr_offsets[-1] == len(ix.attr_ids)
          and (m == 0 or (ix.obj_class.max() < len(ix.class_names) and ix.obj_class.min() >= 0))
          and (len(ix.attr_ids) == 0 or (ix.attr_ids.max() < len(ix.attribute_names) and ix.attr_ids.min() >= 0)))
    if not ok:
        raise ValueError("inconsistent array shapes")


def load_index(data_dir: str | os.PathLike, *, cache_dir: object = DEFAULT_CACHE_DIR,
               min_bytes: int = CACHE_MIN_BYTES) -> VGIndex:
    """The index of the Visual Genome copy in `data_dir`: from the cache when it matches the JSON files, else parsed
    (and cached when the files total at least `min_bytes`). cache_dir: a path, DEFAULT_CACHE_DIR or None (no cache)."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise ValueError(f"--data-dir {root}: no such directory")
    root = root.resolve()
    stamps = source_stamps(root)
    directory = resolve_cache_dir(cache_dir)
    use_cache = directory is not None and sum(s[0] for s in stamps.values()) >= min_bytes
    meta = _meta(root, stamps)
    path = index_path(directory, root) if use_cache else None
    if use_cache:
        cached = read_index(path, meta)
        if cached is not None:
            return cached
    index = build_index(root)
    if use_cache and source_stamps(root) == stamps:  # a file changed while being read: do not cache the mix
        try:
            save_index(path, index, meta)
        except OSError as err:
            warnings.warn(f"could not write the Visual Genome index cache {path} ({err}); it will be parsed again "
                          "next time", stacklevel=2)
    return index
