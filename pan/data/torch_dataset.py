"""PyTorch views of a :class:`~pan.data.PanDataset`: a per-example ``Dataset`` and a device-resident batch loader.

Both yield dicts with ``image [3,100,100]`` (float in [0,1], or uint8), ``query``, ``answer``, ``scale``,
``index`` (example index) and, unless ``with_mask=False``, ``mask [100,100] bool`` (the target digit's mask).
"""

from __future__ import annotations

import numpy as np
import torch

from pan.data.dataset import PanDataset

__all__ = ["PanTorchDataset", "GpuLoader"]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype != torch.uint8 and not dtype.is_floating_point:
        raise TypeError(f"dtype must be torch.uint8 or a floating dtype, got {dtype}")


class PanTorchDataset(torch.utils.data.Dataset):
    """Example ``i`` as a dict of tensors (CPU), for ``torch.utils.data.DataLoader``.

    ``dtype=torch.float32`` (default) scales images to [0, 1]; ``torch.uint8`` returns the raw pixels.
    """

    def __init__(self, dataset: PanDataset, dtype: torch.dtype = torch.float32, with_mask: bool = True):
        _check_dtype(dtype)
        self.dataset = dataset
        self.dtype = dtype
        self.with_mask = with_mask
        self._images = _tensor(dataset.images)  # [N_img,100,100,3] uint8, shares memory
        self._instances = _tensor(dataset.instances)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} examples")
        i = int(i) % n
        ds = self.dataset
        img_idx = int(ds.image_index[i])
        image = self._images[img_idx].permute(2, 0, 1)
        image = image.clone() if self.dtype == torch.uint8 else image.to(self.dtype).div_(255)
        item = {
            "image": image,
            "query": torch.tensor(int(ds.query[i])),
            "answer": torch.tensor(int(ds.answer[i])),
            "scale": torch.tensor(float(ds.scale[i])),
            "index": torch.tensor(i),
        }
        if self.with_mask:
            item["mask"] = self._instances[img_idx] == int(ds.target[i])
        return item


class GpuLoader:
    """Shuffled batches from a dataset kept on ``device`` as uint8 (images ``[N_img,3,100,100]``, instance maps).

    Each batch is gathered and converted to ``dtype`` on the device, so no host transfer happens per step. The order
    depends only on ``(seed, epoch)``: each iteration uses ``epoch`` and then increments it; :meth:`set_epoch`
    sets it. With
    ``world_size > 1`` each rank gets its own slice of the same permutation (padded by wrapping around, as
    ``DistributedSampler`` does, unless ``drop_last``).
    """

    def __init__(
        self,
        dataset: PanDataset,
        batch_size: int = 200,
        *,
        device: str | torch.device | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float32,
        with_mask: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        _check_dtype(dtype)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.dtype = dtype
        self.with_mask = with_mask
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        dev = self.device
        self.images = _tensor(dataset.images).permute(0, 3, 1, 2).contiguous().to(dev)
        self.instances = _tensor(dataset.instances).to(dev) if with_mask else None
        self.image_index = _tensor(dataset.image_index).to(dev)
        self.query = _tensor(dataset.query).to(dev)
        self.answer = _tensor(dataset.answer).to(dev)
        self.target = _tensor(dataset.target).to(dev, torch.uint8)
        self.scale = _tensor(dataset.scale).to(dev)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` for the next iteration (each iteration then advances the epoch by one)."""
        self.epoch = int(epoch)

    def _num_for_rank(self) -> int:
        n = len(self.dataset)
        if self.world_size == 1:
            return n
        return n // self.world_size if self.drop_last else -(-n // self.world_size)

    def __len__(self) -> int:
        per_rank = self._num_for_rank()
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """Example indices this rank visits in ``epoch`` (CPU int64)."""
        n = len(self.dataset)
        if self.shuffle:
            state = np.random.SeedSequence([self.seed, epoch]).generate_state(2, dtype=np.uint32)
            gen = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
            perm = torch.randperm(n, generator=gen)
        else:
            perm = torch.arange(n)
        if self.world_size > 1:
            total = self._num_for_rank() * self.world_size
            if total > n:
                perm = torch.cat([perm, perm[: total - n]])
            perm = perm[self.rank : total : self.world_size]
        return perm

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch of the given example indices (a tensor on any device)."""
        idx = indices.to(self.device)
        img_idx = self.image_index[idx]
        images = self.images[img_idx]
        if self.dtype != torch.uint8:
            images = images.to(self.dtype).div_(255)
        out = {
            "image": images,
            "query": self.query[idx],
            "answer": self.answer[idx],
            "scale": self.scale[idx],
            "index": idx,
        }
        if self.with_mask:
            out["mask"] = self.instances[img_idx] == self.target[idx][:, None, None]
        return out

    def __iter__(self):
        perm = self.order(self.epoch).to(self.device)
        self.epoch += 1
        per_rank = perm.numel()
        stop = (per_rank // self.batch_size) * self.batch_size if self.drop_last else per_rank
        for start in range(0, stop, self.batch_size):
            yield self.batch(perm[start : start + self.batch_size])
