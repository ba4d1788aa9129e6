"""The paper's synthetic datasets MREF, MDIST and MBG (docs/design.md, Datasets), built from real MNIST digits.

``make_dataset(name, split, num_examples, seed=0, mnist_dir=None, cache_dir=...)`` returns a :class:`PanDataset`;
:class:`PanTorchDataset` and :class:`GpuLoader` (imported lazily, they need torch) feed it to training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pan.data.cache import DEFAULT_CACHE_DIR
from pan.data.constants import COLOR_NAMES, COLOR_RGB, DATASETS, PAPER_SIZES, SPLITS
from pan.data.dataset import PanDataset
from pan.data.generate import make_dataset
from pan.data.mnist import load_mnist

if TYPE_CHECKING:
    from pan.data.torch_dataset import GpuLoader, PanTorchDataset

__all__ = [
    "make_dataset",
    "PanDataset",
    "COLOR_NAMES",
    "COLOR_RGB",
    "DATASETS",
    "SPLITS",
    "PAPER_SIZES",
    "DEFAULT_CACHE_DIR",
    "PanTorchDataset",
    "GpuLoader",
    "load_mnist",
]


def __getattr__(name: str):
    if name in ("PanTorchDataset", "GpuLoader"):
        from pan.data import torch_dataset

        return getattr(torch_dataset, name)
    raise AttributeError(f"module 'pan.data' has no attribute {name!r}")
