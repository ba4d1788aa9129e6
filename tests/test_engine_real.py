"""Visual Genome on the shared engine (tiny model in place of VGG-16): amp "auto" is resolved and recorded,
gradient clipping and channels-last reach the step, the metrics log and summary have their fields, and a resume with
other settings is refused."""

from __future__ import annotations

import json
import math

import pytest
import torch

import pan.train.precision as precision
import pan.train.real_images as real_images
from pan.train import ResumeError, load_checkpoint
from tests.engine_helpers import real_config, tiny_real_model, write_tiny_vg
from tests.test_train_support import single_thread  # noqa: F401


@pytest.fixture
def vg(tmp_path, monkeypatch):
    monkeypatch.setattr(real_images, "build_real_model", tiny_real_model)
    monkeypatch.setattr(precision, "fast_bf16", lambda device: False)
    return write_tiny_vg(tmp_path / "vg")


def _moved(out) -> float:
    """Largest weight change of a run: its last.pt against the seed's initial weights."""
    torch.manual_seed(0)
    start = tiny_real_model(None, 3, 3).state_dict()
    last = load_checkpoint(out / "last.pt")["model"]
    return max((last[k] - start[k]).abs().max().item() for k in start)


def test_real_images_run_on_the_engine(tmp_path, vg):
    free = real_images.train_real_images(real_config(vg, tmp_path / "free", epochs=1, amp="auto"), progress=False)
    config = json.loads((tmp_path / "free" / "config.json").read_text())
    assert config["amp"] is False and config["kind"] == "real-images" and config["checkpoint_every"] == 10.0
    assert free["stopped"] == "max_epochs" and free["epochs_done"] == 1 and free["interrupted"] is None
    assert free["best_weighted_map"] == free["best_val_acc"] and 0 <= free["best_weighted_map"] <= 1
    (line,) = [json.loads(x) for x in (tmp_path / "free" / "metrics.jsonl").read_text().splitlines()]
    for key in ("epoch", "step", "lr", "train_loss", "grad_norm", "val_weighted_map", "val_map", "val_tpr",
                "best_val_weighted_map", "best_epoch", "seconds", "images_per_s"):
        assert key in line and (line[key] is None or math.isfinite(line[key])), key
    assert line["step"] == 4 and line["images_per_s"] > 0
    # clipping the gradient norm to 1e-12 leaves Adam's steps ~1e-4 as long (its eps dominates)
    real_images.train_real_images(real_config(vg, tmp_path / "clipped", epochs=1, clip_norm=1e-12,
                                              channels_last=True), progress=False)
    assert _moved(tmp_path / "clipped") < 1e-2 * _moved(tmp_path / "free")
    with pytest.raises(ResumeError, match="lr: "):
        real_images.train_real_images(real_config(vg, tmp_path / "free", epochs=2, lr=1e-3), resume=True)
    more = real_images.train_real_images(real_config(vg, tmp_path / "free", epochs=2, checkpoint_every=0),
                                         resume=True, progress=False)  # more epochs and another timer: allowed
    assert more["epochs_done"] == 2


def test_real_image_config_checks_clip_and_amp(tmp_path):
    for change in ({"clip_norm": 0.0}, {"clip_norm": float("nan")}, {"amp": "yes"}):
        with pytest.raises(ValueError, match=next(iter(change))):
            real_images.RealImageConfig(data_dir=str(tmp_path), **change).validate()
