"""Tiny Visual Genome and VOC 2007 folders written by the tests (no real data is ever needed)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

# image id -> objects (name, attributes, box x, y, w, h); "cat" x3, "dog" x2, "tree" x1; "black" x3, "white" x2
VG_OBJECTS = {
    1: [("cat", ["black", "small"], (2, 4, 10, 6)), ("dog", ["white"], (0, 0, 5, 5))],
    2: [("Cat ", ["black"], (1, 1, 8, 8)), ("tree", ["green"], (3, 3, 4, 4))],
    3: [("dog", ["white", "black"], (5, 5, 10, 10))],
    4: [("cat", ["striped"], (0, 0, 20, 10))],
    5: [("cat", ["black"], (4, 2, 6, 6))],
    6: [("dog", [], (1, 1, 2, 2))],
}


def write_vg(root, objects=VG_OBJECTS, size=(20, 16)):
    (root / "VG_100K").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for image_id in objects:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            root / "VG_100K" / f"{image_id}.jpg")
    (root / "image_data.json").write_text(json.dumps(
        [{"image_id": i, "width": size[0], "height": size[1]} for i in objects]))
    records = [{"image_id": i, "objects": [{"object_id": 10 * i + k, "x": b[0], "y": b[1], "w": b[2], "h": b[3],
                                           "names": [n]} for k, (n, _, b) in enumerate(objs)]}
               for i, objs in objects.items()]
    (root / "objects.json").write_text(json.dumps(records))
    attrs = [{"image_id": i, "attributes": [{"object_id": 10 * i + k, "x": b[0], "y": b[1], "w": b[2], "h": b[3],
                                             "names": [n], "attributes": a} for k, (n, a, b) in enumerate(objs)]}
             for i, objs in objects.items()]
    (root / "attributes.json").write_text(json.dumps(attrs))
    return root


def write_voc(root, masks):
    base = root / "VOCdevkit" / "VOC2007"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, mask in masks.items():
        pixels = rng.integers(0, 255, (*mask.shape, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / "JPEGImages" / f"{name}.jpg")
        palette_image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), mask.astype(np.uint8).tobytes())
        palette_image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])  # as VOC: indexed
        palette_image.save(base / "SegmentationClass" / f"{name}.png")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(masks) + "\n")
    return root


def voc_masks():
    a = np.zeros((12, 16), dtype=np.uint8)
    a[2:6, 3:9] = 15  # person
    a[6, 3:9] = 255  # border
    a[8:11, 10:14] = 12  # dog
    b = np.zeros((12, 16), dtype=np.uint8)
    b[0:4, 0:4] = 20  # tvmonitor
    return {"000001": a, "000002": b}
