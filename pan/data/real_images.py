"""torch Datasets over the real-image readers: images resized to size x size and ImageNet-normalised (as torchvision's
VGG-16 expects), the query, the target, and the ground-truth mask for TPR in the resized frame.

    VisualGenomeImages(VisualGenome(dir, "train"))[i] -> (image [3,S,S] float, query int64, attributes [A] float,
                                                          box mask [S,S] bool)
    VOCImages(VOC2007(dir, "val"))[i]                -> (image [3,S,S] float, query int64, object mask [S,S] bool)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pan.data.visual_genome import VisualGenome
from pan.data.voc import VOC2007

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """RGB image resized to size x size, ImageNet-normalised [3, size, size], and its original (width, height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            original = img.size
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"{path}: unreadable image ({err})") from None
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std, original


def box_mask(box: tuple[float, float, float, float], original: tuple[int, int], size: int) -> torch.Tensor:
    """[size, size] bool: the pixels of the resized image that the box (x, y, w, h in original pixels) covers."""
    x, y, w, h = box
    sx, sy = size / original[0], size / original[1]
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    cols = (centres >= x * sx) & (centres < (x + w) * sx)
    rows = (centres >= y * sy) & (centres < (y + h) * sy)
    return rows[:, None] & cols[None, :]


class VisualGenomeImages(Dataset):
    def __init__(self, reader: VisualGenome, size: int = 224):
        self.reader, self.size = reader, size

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int):
        ex = self.reader.examples[i]
        image, original = load_image(ex.path, self.size)
        target = torch.from_numpy(self.reader.target(i)).float()
        return image, torch.tensor(ex.query), target, box_mask(ex.box, original, self.size)


class VOCImages(Dataset):
    def __init__(self, reader: VOC2007, size: int = 224):
        self.reader, self.size = reader, size

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int):
        from PIL import Image

        ex = self.reader.examples[i]
        image, _ = load_image(self.reader.voc.images[ex.index], self.size)
        classes = Image.fromarray(self.reader.mask_classes(ex.index)).resize((self.size, self.size), Image.NEAREST)
        mask = torch.from_numpy(np.asarray(classes) == ex.voc_class)
        return image, torch.tensor(ex.query), mask
