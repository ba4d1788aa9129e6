"""The in-memory dataset: images, instance masks and one example per digit."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from pan.data.constants import COLOR_NAMES, IMAGE_SIZE

__all__ = ["PanDataset"]

_ARRAYS = ("images", "instances", "image_index", "query", "answer", "target", "scale")
_DTYPES = {
    "images": np.uint8,
    "instances": np.uint8,
    "image_index": np.int64,
    "query": np.int64,
    "answer": np.int64,
    "target": np.int64,
    "scale": np.float32,
}


@dataclass(eq=False)
class PanDataset:
    """One split of MREF / MDIST / MBG.

    Images (``N_img`` of them) and examples (``N``, one per digit) are stored separately:

    - ``images [N_img,100,100,3] uint8`` RGB;
    - ``instances [N_img,100,100] uint8``: 0 = background (and MDIST distractors), ``i`` = the i-th digit;
    - ``image_index [N] int64``: image of each example;
    - ``query [N] int64``: the digit class 0-9 asked about;
    - ``answer [N] int64``: its colour, an index into ``COLOR_NAMES``;
    - ``target [N] int64``: its instance id, so its mask is ``instances[image_index] == target``;
    - ``scale [N] float32``: its scale (the digit is ``round(28 * scale)`` px wide before cropping to its ink);
    - ``meta``: the generation arguments (name, split, seed, ...).
    """

    images: np.ndarray
    instances: np.ndarray
    image_index: np.ndarray
    query: np.ndarray
    answer: np.ndarray
    target: np.ndarray
    scale: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.query.shape[0])

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    def target_mask(self, i: int) -> np.ndarray:
        """Mask of example ``i``'s queried digit, ``[100,100] bool``."""
        return self.instances[self.image_index[i]] == self.target[i]

    def target_masks(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Masks of several examples (all by default), ``[k,100,100] bool``."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices)
        return self.instances[self.image_index[idx]] == self.target[idx][:, None, None]

    def answer_names(self) -> list[str]:
        """The colour name of every example."""
        return [COLOR_NAMES[a] for a in self.answer]

    def arrays(self) -> dict[str, np.ndarray]:
        """The seven arrays by name."""
        return {k: getattr(self, k) for k in _ARRAYS}

    def validate(self) -> None:
        """Raise ``ValueError`` if shapes, dtypes or index ranges are inconsistent."""
        n_img, n = self.num_images, len(self)
        if self.images.shape != (n_img, IMAGE_SIZE, IMAGE_SIZE, 3):
            raise ValueError(f"images must be [N_img,{IMAGE_SIZE},{IMAGE_SIZE},3], got {self.images.shape}")
        if self.instances.shape != (n_img, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"instances must be [{n_img},{IMAGE_SIZE},{IMAGE_SIZE}], got {self.instances.shape}")
        for key, dtype in _DTYPES.items():
            arr = getattr(self, key)
            if arr.dtype != dtype:
                raise ValueError(f"{key} must be {np.dtype(dtype)}, got {arr.dtype}")
            if key not in ("images", "instances") and arr.shape != (n,):
                raise ValueError(f"{key} must be [{n}], got {arr.shape}")
        if n and (self.image_index.min() < 0 or self.image_index.max() >= n_img):
            raise ValueError("image_index out of range")
        if n and (self.query.min() < 0 or self.query.max() > 9):
            raise ValueError("query out of range 0-9")
        if n and (self.answer.min() < 0 or self.answer.max() >= len(COLOR_NAMES)):
            raise ValueError("answer out of range")
        if n and self.target.min() < 1:
            raise ValueError("target instance ids start at 1")

    def save(self, path: str | os.PathLike | object) -> None:
        """Write an uncompressed ``.npz`` (the seven arrays plus ``meta`` as JSON) to a path or an open binary file."""
        np.savez(path, **self.arrays(), meta=np.array(json.dumps(self.meta, sort_keys=True)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> PanDataset:
        """Read a file written by :meth:`save` (every array is read, so a damaged file raises here)."""
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*_ARRAYS, "meta") if k not in data.files]
            if missing:
                raise ValueError(f"{path}: not a PAN dataset file (missing {missing})")
            arrays = {k: data[k] for k in _ARRAYS}
            meta = json.loads(str(data["meta"]))
        dataset = cls(**arrays, meta=meta)
        dataset.validate()
        return dataset
