"""The training data kept resident on the training device, and the deterministic batch order.

Images stay uint8 (``[N_img, 3, 100, 100]``, permuted to NCHW once at load) on the device when they fit in GPU memory
(otherwise in pinned host memory); each batch is gathered by ``image_index`` and converted to float in [0, 1] on the
device, so no host round trip happens per step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from pan.train.config import TrainConfig

__all__ = ["ResidentData", "epoch_permutation", "load_datasets"]

# Keep the dataset on the GPU when it takes at most this fraction of the free GPU memory.
GPU_FRACTION = 0.5


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the ``n`` training examples in ``epoch`` (CPU int64): a function of ``(seed, epoch)`` only."""
    state = np.random.SeedSequence([int(seed), int(epoch), 0x70616E]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return torch.randperm(n, generator=gen)


def _tensor(array: Any) -> torch.Tensor:
    array = np.asarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class ResidentData:
    """``images`` / ``image_index`` / ``query`` / ``answer`` of a PanDataset as tensors on ``device`` (or pinned host
    memory when they do not fit), with ``gather(indices) -> (images float [b,3,100,100] in [0,1], query, answer)``
    (images in channels-last memory order when ``channels_last``: the faster convolution layout on CPUs)."""

    def __init__(self, dataset: Any, device: torch.device, *, storage: str = "auto", channels_last: bool = False):
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        images = _tensor(dataset.images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N_img, H, W, 3], got {images.dtype} {tuple(images.shape)}")
        self.num_examples = int(np.asarray(dataset.query).shape[0])
        nbytes = images.numel() + 3 * 8 * self.num_examples
        if storage == "auto":
            storage = "device"
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                storage = "device" if nbytes <= GPU_FRACTION * free else "host"
        self.storage = torch.device("cpu") if storage == "host" else self.device
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.storage)
        self.image_index = _tensor(dataset.image_index).long().to(self.storage)
        self.query = _tensor(dataset.query).long().to(self.storage)
        self.answer = _tensor(dataset.answer).long().to(self.storage)
        if self.storage.type == "cpu" and self.device.type == "cuda":
            self.images = self.images.pin_memory()

    def __len__(self) -> int:
        return self.num_examples

    def gather(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch of the example ``indices`` (a tensor on the storage device) on the training device."""
        images = self.images[self.image_index[indices]]
        query, answer = self.query[indices], self.answer[indices]
        if self.storage != self.device:
            images = images.pin_memory().to(self.device, non_blocking=True)
            query = query.to(self.device, non_blocking=True)
            answer = answer.to(self.device, non_blocking=True)
        return images.float().div_(255.0).contiguous(memory_format=self.memory_format), query, answer

    def padded_batches(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All examples in order as ``[num_batches, batch_size]`` indices (the last batch padded by repeating the
        last example) and the matching validity mask, so every evaluation batch has the same shape."""
        nb = max(1, math.ceil(self.num_examples / batch_size))
        idx = torch.arange(nb * batch_size, device=self.storage)
        valid = (idx < self.num_examples).to(self.device)
        return idx.clamp_(max=self.num_examples - 1).view(nb, batch_size), valid.view(nb, batch_size)


def load_datasets(config: TrainConfig) -> tuple[Any, Any]:
    """The (train, val) PanDatasets of ``config``: from ``train_file`` / ``val_file`` when given, else generated (or
    read from the cache) by ``pan.data.make_dataset``. Under torchrun, rank 0 goes first so it alone fills the cache.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and dist.get_rank() != 0:
        dist.barrier()
        out = _load_datasets(config)
    else:
        out = _load_datasets(config)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.barrier()
    return out


def _load_datasets(config: TrainConfig) -> tuple[Any, Any]:
    from pan.data import PanDataset, make_dataset

    if config.train_file is not None:
        return PanDataset.load(config.train_file), PanDataset.load(config.val_file)
    kwargs: dict[str, Any] = {"seed": config.data_seed, "mnist_dir": config.mnist_dir}
    if config.no_cache:
        kwargs["cache_dir"] = None
    elif config.cache_dir is not None:
        kwargs["cache_dir"] = config.cache_dir
    return (make_dataset(config.dataset, "train", config.num_train, **kwargs),
            make_dataset(config.dataset, "val", config.num_val, **kwargs))
