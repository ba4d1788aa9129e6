"""The divergence stop: a non-finite loss, gradient norm or weights end the run at once with a one-line error that
says where and what to try; the last good checkpoint stays, no checkpoint of non-finite weights is written (last.pt
nor best.pt, not even by the wall-clock timer), and `pan train` exits 1 without a traceback. MREF and Visual Genome."""

from __future__ import annotations

import json

import pytest
import torch

import pan.train.mref_task as mref_task
from pan.cli.main import main
from pan.train import TrainConfig, TrainingDiverged, load_checkpoint, lr_grid, train
from tests.engine_helpers import tiny_real_model, write_tiny_vg
from tests.test_train_support import metrics_lines, single_thread, synthetic_dataset  # noqa: F401

TRAIN, VAL = synthetic_dataset(40, seed=0), synthetic_dataset(20, seed=1)
BASE = dict(model="san", num_train=40, num_val=20, batch_size=10, max_epochs=2, backend="torch", device="cpu",
            quiet=True)  # 4 steps per epoch


def _poison(monkeypatch, call: int, *, after: bool = False) -> None:
    """Make the ``call``-th optimiser step non-finite: a weight set to inf before it (or after it, ``after``)."""
    real, calls = mref_task.train_step, [0]

    def step(model, *args, **kwargs):
        calls[0] += 1
        if calls[0] == call and not after:
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))
        out = real(model, *args, **kwargs)
        if calls[0] == call and after:
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))
        return out

    monkeypatch.setattr(mref_task, "train_step", step)


def _all_finite(path) -> bool:
    return all(torch.isfinite(t).all() for t in load_checkpoint(path)["model"].values() if t.is_floating_point())


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _poison(monkeypatch, 6)  # epoch 2, step 2
    with pytest.raises(TrainingDiverged) as info:  # the timer is due before every step: it must not save after
        train(TrainConfig(**BASE, out_dir=str(tmp_path), checkpoint_every=1e-6), train_data=TRAIN, val_data=VAL)
    message = str(info.value)
    assert "\n" not in message
    assert "epoch 2, step 2 of 4 (global step 6): the loss and the gradient norm are not finite" in message
    assert "--lr" in message and "--clip-norm" in message and f"kept {tmp_path / 'last.pt'}" in message
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 1)  # the timed checkpoint before the bad step
    assert _all_finite(tmp_path / "last.pt") and _all_finite(tmp_path / "best.pt")
    assert [m["epoch"] for m in metrics_lines(tmp_path / "metrics.jsonl")] == [1]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped"] == "diverged" and summary["error"] == message
    assert info.value.summary["stopped"] == "diverged"


def test_non_finite_weights_are_never_saved(tmp_path, monkeypatch):
    _poison(monkeypatch, 4, after=True)  # the last step of epoch 1 leaves inf weights but a finite loss
    with pytest.raises(TrainingDiverged, match="weights are not finite.*no checkpoint was written"):
        train(TrainConfig(**BASE, out_dir=str(tmp_path), checkpoint_every=0), train_data=TRAIN, val_data=VAL)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()
    assert metrics_lines(tmp_path / "metrics.jsonl") == []  # no epoch line of a diverged model either


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_cli_huge_lr_exits_1_with_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "san", "--num-train", "40", "--num-val", "20", "--batch-size", "10",
                 "--epochs", "2", "--lr", "1e10", "--backend", "torch", "--device", "cpu", "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(out), "--quiet"])
    line = _one_line_error(capsys)
    assert code == 1
    assert line.startswith("pan train: error: training diverged at epoch ") and "lower --lr (now 1e+10)" in line
    for name in ("last.pt", "best.pt"):
        assert not (out / name).exists() or _all_finite(out / name), name


def test_cli_real_images_huge_lr_exits_1_with_one_line(tmp_path, capsys, monkeypatch):
    import pan.train.real_images as real_images

    monkeypatch.setattr(real_images, "build_real_model", tiny_real_model)  # 3 layers: it takes lr 1e30 to overflow
    data = write_tiny_vg(tmp_path / "vg")
    out = tmp_path / "run"
    code = main(["train", "--dataset", "vg", "--data-dir", str(data), "--batch-size", "4", "--image-size", "32",
                 "--min-count", "1", "--workers", "0", "--backend", "torch", "--device", "cpu", "--epochs", "3",
                 "--lr", "1e30", "--backbone-lr", "1e30", "--out", str(out), "--quiet"])
    line = _one_line_error(capsys)
    assert code == 1 and line.startswith("pan train: error: training diverged at epoch ") and "--lr" in line
    for name in ("last.pt", "best.pt"):
        assert not (out / name).exists() or _all_finite(out / name), name


def test_lr_grid_records_a_diverged_lr_and_goes_on(tmp_path):
    config = TrainConfig(**{**BASE, "max_epochs": 1, "out_dir": str(tmp_path)})
    result = lr_grid(config, [1e10, 0.001], train_data=TRAIN, val_data=VAL)
    diverged, fine = result["runs"]
    assert diverged["stopped"] == "diverged" and "training diverged" in diverged["error"]
    assert fine["stopped"] == "max_epochs" and result["complete"]
    assert result["best_lr"] == 0.001 and result["checkpoint"] == str(tmp_path / "lr_0.001" / "best.pt")
