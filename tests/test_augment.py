"""``augment_shift``: each training image moves by its own offset, nothing leaves the canvas, the draws follow the
seed (exact resume), and the option's place in the config, the CLI and the training step."""

from __future__ import annotations

import pytest
import torch

from pan.train import RESUME_FIELDS, ResumeError, TrainConfig, train
from pan.train.augment import random_shift, shift_ranges
from tests.test_train_support import metrics_lines


def _canvas(batch: int, boxes: list[tuple[int, int, int, int]], size: int = 40, seed: int = 0) -> torch.Tensor:
    """``[batch, 3, size, size]`` zeros with random positive values in box ``(top, left, bottom, right)`` (inclusive)
    of each image (boxes cycle over the batch)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(batch, 3, size, size)
    for b in range(batch):
        t, left, bottom, right = boxes[b % len(boxes)]
        x[b, :, t:bottom + 1, left:right + 1] = torch.rand(3, bottom - t + 1, right - left + 1, generator=g) + 0.1
    return x


def _offset(src: torch.Tensor, out: torch.Tensor, limit: int) -> tuple[int, int]:
    """The one ``(dy, dx)`` with ``out == src`` moved by it (zero fill), found by trying them all."""
    size = src.shape[-1]
    found = []
    for dy in range(-limit, limit + 1):
        for dx in range(-limit, limit + 1):
            moved = torch.zeros_like(src)
            moved[:, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
                src[:, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
            if torch.equal(moved, out):
                found.append((dy, dx))
    assert len(found) == 1, found
    return found[0]


def test_each_image_is_an_exact_translate_that_keeps_its_ink():
    boxes = [(10, 12, 20, 25), (0, 0, 5, 7), (30, 31, 39, 39), (3, 20, 36, 22)]
    x = _canvas(8, boxes)
    torch.manual_seed(0)
    out = random_shift(x, 6)
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = [_offset(x[b], out[b], 6) for b in range(len(x))]
    for b, (dy, dx) in enumerate(offsets):
        t, left, bottom, right = boxes[b % len(boxes)]
        assert -min(t, 6) <= dy <= min(39 - bottom, 6) and -min(left, 6) <= dx <= min(39 - right, 6)
        assert torch.allclose(out[b].sum(), x[b].sum())  # nothing fell off
    assert len(set(offsets)) > 1  # the images moved independently


def test_the_offsets_cover_their_range_uniformly():
    x = _canvas(4000, [(15, 15, 24, 24)])  # room for 6 pixels on every side
    dy_min, dy_max, dx_min, dx_max = shift_ranges(x, 3)
    assert dy_min.unique().tolist() == [-3] and dy_max.unique().tolist() == [3]
    assert dx_min.unique().tolist() == [-3] and dx_max.unique().tolist() == [3]
    torch.manual_seed(1)
    out = random_shift(x, 3)
    first_row = out.ne(0).any(1).any(2).float().argmax(1) - 15  # dy of each image
    counts = torch.bincount(first_row + 3, minlength=7)
    assert counts.numel() == 7 and counts.min() > 4000 / 7 * 0.8 and counts.max() < 4000 / 7 * 1.2


def test_an_image_against_the_border_only_moves_away_from_it():
    x = _canvas(200, [(0, 0, 9, 9)])  # ink touches the top and left edges
    dy_min, dy_max, dx_min, dx_max = shift_ranges(x, 5)
    assert dy_min.unique().tolist() == [0] and dx_min.unique().tolist() == [0]
    assert dy_max.unique().tolist() == [5] and dx_max.unique().tolist() == [5]
    torch.manual_seed(2)
    out = random_shift(x, 5)
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    full = _canvas(3, [(0, 0, 39, 39)])  # ink edge to edge (a photograph): it cannot move
    assert torch.equal(random_shift(full, 5), full)
    empty = torch.zeros(2, 3, 40, 40)
    assert torch.equal(random_shift(empty, 5), empty)


def test_seeded_draws_zero_shift_memory_format_and_bad_values():
    x = _canvas(16, [(10, 10, 20, 20), (5, 25, 12, 33)])
    torch.manual_seed(3)
    a = random_shift(x, 4)
    torch.manual_seed(3)
    assert torch.equal(random_shift(x, 4), a)
    assert not torch.equal(a, x)
    assert random_shift(x, 0) is x
    cl = random_shift(x.contiguous(memory_format=torch.channels_last), 4)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="max_shift"):
            random_shift(x, bad)


def test_config_field_validation_and_resume_check():
    assert "augment_shift" in RESUME_FIELDS and TrainConfig().augment_shift == 0
    assert TrainConfig(augment_shift=8, dataset="mdist").augment_shift == 8
    for bad in (-1, 100, 2.5, True):
        with pytest.raises(ValueError, match="augment_shift"):
            TrainConfig(augment_shift=bad)
    with pytest.raises(ValueError, match="black background"):
        TrainConfig(augment_shift=4, dataset="mbg")
    old = TrainConfig().to_dict()
    del old["augment_shift"]  # a config written before the option existed
    assert TrainConfig.from_dict(old).augment_shift == 0


def test_training_moves_the_images_and_resumes_exactly(tmp_path, monkeypatch):
    import pan.train.mref_task as mref_task
    from pan.data import make_dataset

    cache = tmp_path / "cache"
    train_data = make_dataset("mref", "train", 40, seed=0, cache_dir=cache)
    val_data = make_dataset("mref", "val", 20, seed=0, cache_dir=cache)
    base = dict(model="pan-h-ctx", num_train=40, num_val=20, batch_size=10, max_epochs=2, backend="torch",
                device="cpu", quiet=True, checkpoint_every=0, augment_shift=6)
    seen = []
    real_step = mref_task.train_step

    def spy(model, optimizer, images, *args, **kwargs):
        seen.append(images.clone())
        return real_step(model, optimizer, images, *args, **kwargs)

    monkeypatch.setattr(mref_task, "train_step", spy)
    straight = train(TrainConfig(**base, out_dir=str(tmp_path / "straight")), train_data=train_data,
                     val_data=val_data)
    monkeypatch.setattr(mref_task, "train_step", real_step)
    # the first batch, unmoved, against what the step saw: same ink, other places
    from pan.train.data import ResidentData, epoch_permutation

    resident = ResidentData(train_data, torch.device("cpu"))
    plain, _, _ = resident.gather(epoch_permutation(0, 1, 40)[:10])
    assert torch.allclose(seen[0].sum((1, 2, 3)), plain.sum((1, 2, 3)))
    assert sum(not torch.equal(s, p) for s, p in zip(seen[0], plain)) >= 8

    out = tmp_path / "resumed"
    first = train(TrainConfig(**base, out_dir=str(out), stop_after_steps=5), train_data=train_data,
                  val_data=val_data)
    assert first["stopped"] == "interrupted"
    resumed = train(TrainConfig(**base, out_dir=str(out), resume=True), train_data=train_data, val_data=val_data)
    assert resumed["param_digest"] == straight["param_digest"]
    assert metrics_lines(out / "metrics.jsonl") == metrics_lines(tmp_path / "straight" / "metrics.jsonl")
    with pytest.raises(ResumeError, match="augment_shift"):
        train(TrainConfig(**{**base, "augment_shift": 2, "max_epochs": 3}, out_dir=str(out), resume=True),
              train_data=train_data, val_data=val_data)
