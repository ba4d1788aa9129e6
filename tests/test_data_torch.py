"""The torch Dataset view and the device-resident loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pan.data import GpuLoader, PanTorchDataset, make_dataset


@pytest.fixture(scope="module")
def ds():
    return make_dataset("mbg", "train", 130, seed=7, cache_dir=None)


def test_torch_dataset_items(ds):
    view = PanTorchDataset(ds)
    assert len(view) == len(ds)
    item = view[5]
    k = ds.image_index[5]
    assert item["image"].shape == (3, 100, 100) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert torch.allclose(item["image"], torch.from_numpy(ds.images[k]).permute(2, 0, 1).float() / 255)
    assert item["query"].item() == ds.query[5] and item["answer"].item() == ds.answer[5]
    assert item["mask"].dtype == torch.bool and torch.equal(item["mask"], torch.from_numpy(ds.target_mask(5)))
    assert item["scale"].item() == pytest.approx(float(ds.scale[5]))
    raw = PanTorchDataset(ds, dtype=torch.uint8, with_mask=False)[5]
    assert raw["image"].dtype == torch.uint8 and "mask" not in raw
    assert torch.equal(raw["image"], torch.from_numpy(ds.images[k]).permute(2, 0, 1))
    with pytest.raises(IndexError):
        view[len(ds)]


def test_dataloader_collates(ds):
    loader = torch.utils.data.DataLoader(PanTorchDataset(ds), batch_size=16)
    batch = next(iter(loader))
    assert batch["image"].shape == (16, 3, 100, 100) and batch["mask"].shape == (16, 100, 100)
    assert batch["query"].shape == (16,) and batch["query"].dtype == torch.int64


def _check_batches(loader, ds, device):
    seen = []
    for batch in loader:
        idx = batch["index"].cpu().numpy()
        seen.append(idx)
        assert batch["image"].device.type == torch.device(device).type
        assert batch["image"].dtype == torch.float32 and batch["image"].shape[1:] == (3, 100, 100)
        expect = torch.from_numpy(ds.images[ds.image_index[idx]]).permute(0, 3, 1, 2).float() / 255
        assert torch.allclose(batch["image"].cpu(), expect)
        assert np.array_equal(batch["query"].cpu().numpy(), ds.query[idx])
        assert np.array_equal(batch["answer"].cpu().numpy(), ds.answer[idx])
        assert np.array_equal(batch["mask"].cpu().numpy(), ds.target_masks(idx))
    return np.concatenate(seen)


def test_gpu_loader_on_cpu(ds):
    loader = GpuLoader(ds, batch_size=32, device="cpu", seed=1)
    assert len(loader) == 5
    epoch0 = _check_batches(loader, ds, "cpu")
    epoch1 = _check_batches(loader, ds, "cpu")
    assert sorted(epoch0.tolist()) == list(range(len(ds))) == sorted(epoch1.tolist())
    assert not np.array_equal(epoch0, epoch1), "a new permutation every epoch"
    again = GpuLoader(ds, batch_size=32, device="cpu", seed=1)
    assert np.array_equal(np.concatenate([b["index"].numpy() for b in again]), epoch0), "deterministic by seed"
    again.set_epoch(1)
    assert np.array_equal(np.concatenate([b["index"].numpy() for b in again]), epoch1)
    other = GpuLoader(ds, batch_size=32, device="cpu", seed=2)
    assert not np.array_equal(np.concatenate([b["index"].numpy() for b in other]), epoch0)
    ordered = GpuLoader(ds, batch_size=50, device="cpu", shuffle=False, drop_last=True, dtype=torch.uint8)
    batches = list(ordered)
    assert len(batches) == len(ordered) == 2 and batches[0]["image"].dtype == torch.uint8
    assert np.array_equal(batches[0]["index"].numpy(), np.arange(50))


def test_gpu_loader_shards(ds):
    shards = [GpuLoader(ds, batch_size=20, device="cpu", seed=3, rank=r, world_size=3) for r in range(3)]
    parts = [np.concatenate([b["index"].numpy() for b in s]) for s in shards]
    assert len({len(p) for p in parts}) == 1
    assert set(np.concatenate(parts).tolist()) == set(range(len(ds)))
    # disjoint: the shards hold ceil(N / 3) examples each, N distinct ones in all (the 2 extra pad the last shards)
    assert len(np.concatenate(parts)) == 3 * -(-len(ds) // 3) == len(ds) + 2
    with pytest.raises(ValueError):
        GpuLoader(ds, device="cpu", rank=3, world_size=3)


@pytest.mark.requires_cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_loader_on_cuda(ds):
    loader = GpuLoader(ds, batch_size=64, device="cuda", seed=0)
    assert loader.images.is_cuda and loader.images.dtype == torch.uint8
    seen = _check_batches(loader, ds, "cuda")
    assert sorted(seen.tolist()) == list(range(len(ds)))
