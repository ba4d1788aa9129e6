"""PASCAL VOC 2007 segmentation as an attention test set (paper §4.2): one example per (image, object class present),
the class name as the query and the class's pixels as the ground-truth mask for TPR.

Read through torchvision's `VOCSegmentation(root, year="2007", image_set=split, download=False)`, so `data_dir` holds
`VOCdevkit/VOC2007/{JPEGImages, SegmentationClass, ImageSets/Segmentation}` as the official archive unpacks.
Queries index `VOC_CLASSES`, or, with `query_names` (e.g. a Visual Genome class vocabulary), the matching name there
(`VG_SYNONYMS` maps VOC's names to Visual Genome's); classes without a match are listed in `unmatched`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VG_SYNONYMS = {"aeroplane": "airplane", "diningtable": "table", "motorbike": "motorcycle", "pottedplant": "plant",
               "sofa": "couch", "tvmonitor": "television"}


@dataclass(frozen=True)
class VOCExample:
    """Image `index` of the torchvision dataset, VOC class id `voc_class` (1..20), query index `query`."""

    index: int
    voc_class: int
    query: int


class VOC2007:
    """The examples of one VOC 2007 segmentation split ("train", "val", "trainval", "test")."""

    def __init__(self, data_dir: str | Path, split: str = "val", *, query_names: list[str] | None = None):
        from torchvision.datasets import VOCSegmentation

        root = Path(data_dir)
        if not root.is_dir():
            raise ValueError(f"--data-dir {root}: no such directory")
        try:
            self.voc = VOCSegmentation(str(root), year="2007", image_set=split, download=False)
        except (RuntimeError, FileNotFoundError, ValueError) as err:
            reason = str(err).split(" You can use download=True")[0]  # torchvision's hint; pan downloads nothing
            raise ValueError(f"--data-dir {root}: not a VOC 2007 segmentation copy (expected "
                             f"VOCdevkit/VOC2007/JPEGImages, SegmentationClass, ImageSets/Segmentation/{split}.txt; "
                             f"pan downloads nothing: unpack the VOC 2007 archives there): {reason}") from None
        if query_names is None:
            lookup = {name: i for i, name in enumerate(VOC_CLASSES)}
        else:
            position = {name: i for i, name in enumerate(query_names)}
            lookup = {name: position[VG_SYNONYMS.get(name, name)] for name in VOC_CLASSES
                      if VG_SYNONYMS.get(name, name) in position}
        self.unmatched = [name for name in VOC_CLASSES if name not in lookup]
        self.examples = []
        for index in range(len(self.voc.images)):
            for c in np.unique(self.mask_classes(index)):
                if 1 <= c <= len(VOC_CLASSES) and VOC_CLASSES[c - 1] in lookup:
                    self.examples.append(VOCExample(index, int(c), lookup[VOC_CLASSES[c - 1]]))

    def mask_classes(self, index: int) -> np.ndarray:
        """The class-index mask [H, W] (uint8; 0 background, 255 object borders) of image `index`."""
        from PIL import Image, UnidentifiedImageError

        path = self.voc.masks[index]
        try:
            with Image.open(path) as mask:
                return np.array(mask)
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(f"{path}: unreadable segmentation mask ({err})") from None

    def __len__(self) -> int:
        return len(self.examples)
