"""pan.train: a tiny run's outputs, exact resume (epoch boundary, mid-epoch, SIGTERM, stale checkpoint), early
stopping, the lr schedule, gradient clipping, the uniform model, the lr grid, and refused resumes."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import pan.train.mref_task as loop_module
from pan.models import ModelOutput
from pan.train import (
    ResumeError,
    TrainConfig,
    evaluate,
    load_checkpoint,
    load_model,
    lr_at_epoch,
    lr_grid,
    num_decays,
    param_digest,
    train,
    train_step,
)
from tests.test_train_support import metrics_lines, single_thread, synthetic_dataset  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
TRAIN, VAL = synthetic_dataset(100, seed=0), synthetic_dataset(50, seed=1)
BASE = dict(model="pan-h-ctx", num_train=100, num_val=50, batch_size=25, max_epochs=3, backend="torch",
            device="cpu", quiet=True)  # 4 steps per epoch


def run(out_dir, **overrides) -> dict:
    return train(TrainConfig(**{**BASE, "out_dir": str(out_dir), **overrides}), train_data=TRAIN, val_data=VAL)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 3-epoch run: the reference of every resume test."""
    out = tmp_path_factory.mktemp("straight")
    summary = run(out)
    return out, summary, metrics_lines(out / "metrics.jsonl")


def assert_same_as_straight(out, summary, straight) -> None:
    ref_out, ref_summary, ref_metrics = straight
    assert metrics_lines(out / "metrics.jsonl") == ref_metrics
    assert summary["param_digest"] == ref_summary["param_digest"]
    for key in ("best_val_acc", "best_val_loss", "best_epoch", "epochs", "steps", "stopped"):
        assert summary[key] == ref_summary[key], key
    ckpt, ref_ckpt = load_checkpoint(out / "last.pt"), load_checkpoint(ref_out / "last.pt")
    for key, value in ref_ckpt["optimizer"]["state"].items():
        for name, t in value.items():
            assert torch.equal(ckpt["optimizer"]["state"][key][name], t), (key, name)


def test_tiny_run_outputs(straight):
    out, summary, metrics = straight
    assert summary["stopped"] == "max_epochs" and summary["epochs"] == 3 and summary["steps"] == 12
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    keys = {"epoch", "step", "lr", "train_loss", "train_acc", "grad_norm", "val_loss", "val_acc", "best_val_acc",
            "best_epoch"}
    raw = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(keys | {"seconds", "images_per_s"} <= set(m) for m in raw)
    assert all(m["seconds"] > 0 and m["images_per_s"] > 0 for m in raw)
    assert all(0 <= m["train_acc"] <= 1 and 0 <= m["val_acc"] <= 1 and m["lr"] == 0.001 for m in metrics)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]  # it learns
    best = max(metrics, key=lambda m: m["val_acc"])  # first of equals, as early stopping counts improvements
    assert summary["best_val_acc"] == best["val_acc"] and summary["best_epoch"] == best["epoch"]
    for name in ("last.pt", "best.pt", "config.json", "summary.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["model"] == "pan-h-ctx"
    last, best_ckpt = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    assert last["state"]["epoch"] == 3 and last["state"]["step"] == 0 and last["accum"] is None
    assert best_ckpt["state"]["epoch"] == summary["best_epoch"] == best_ckpt["state"]["best_epoch"]
    assert summary["checkpoint"] == str(out / "best.pt")
    assert not list(out.glob("*.tmp"))


def test_load_model_and_evaluate_match_the_log(straight):
    out, summary, metrics = straight
    model, config = load_model(out / "last.pt", backend="torch")
    assert config.model == "pan-h-ctx" and not model.training
    assert param_digest(model) == summary["param_digest"]
    result = evaluate(model, VAL, batch_size=25)
    assert result["count"] == 50
    assert result["acc"] == pytest.approx(metrics[-1]["val_acc"])
    assert result["loss"] == pytest.approx(metrics[-1]["val_loss"], rel=1e-6)


def test_resume_at_epoch_boundary_is_exact(tmp_path, straight):
    # max_epochs=1 then 3: the schedule and early stopping must not depend on max_epochs.
    first = run(tmp_path, max_epochs=1)
    assert first["stopped"] == "max_epochs" and first["epochs"] == 1
    shutil.copy(tmp_path / "last.pt", tmp_path / "epoch1.pt")
    summary = run(tmp_path, resume=True)
    assert_same_as_straight(tmp_path, summary, straight)
    # A checkpoint older than the log (as after a crash): later lines are dropped and redone identically.
    shutil.copy(tmp_path / "epoch1.pt", tmp_path / "last.pt")
    summary = run(tmp_path, resume=True)
    assert_same_as_straight(tmp_path, summary, straight)
    # Resuming a finished run does nothing.
    again = run(tmp_path, resume=True)
    assert again["steps"] == 12 and again["param_digest"] == summary["param_digest"]


def test_resume_mid_epoch_is_exact(tmp_path, straight):
    first = run(tmp_path, stop_after_steps=6)
    assert first["stopped"] == "interrupted" and first["steps"] == 6 and first["epochs"] == 1
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 2)
    assert ckpt["accum"].shape == (1, 4) and ckpt["accum"][0, 2] == 50  # 2 steps x 25 examples so far
    assert len(metrics_lines(tmp_path / "metrics.jsonl")) == 1
    summary = run(tmp_path, resume=True)
    assert_same_as_straight(tmp_path, summary, straight)


def test_sigterm_saves_and_resume_is_exact(tmp_path, straight, monkeypatch):
    calls = {"n": 0}
    real_step = loop_module.train_step

    def step_then_signal(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 7:
            signal.raise_signal(signal.SIGTERM)  # arrives after step 7: the run stops before step 8
        return out

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(loop_module, "train_step", step_then_signal)
    first = run(tmp_path)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored
    assert first["stopped"] == "interrupted" and first["steps"] == 7
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 3)
    summary = run(tmp_path, resume=True)
    assert_same_as_straight(tmp_path, summary, straight)


def test_early_stopping_patience_1(tmp_path, monkeypatch):
    # Scripted validation accuracies 0.5, 0.6, 0.6: epoch 3 does not improve, so patience 1 stops there.
    accs = iter([0.5, 0.6, 0.6, 0.9, 0.9])

    def fake_eval(model, data, batch_size, **kwargs):
        return torch.tensor([50.0, 50 * next(accs), 50.0], dtype=torch.float64)

    monkeypatch.setattr(loop_module, "evaluate_sums", fake_eval)
    summary = run(tmp_path, model="san", max_epochs=100, patience=1)
    assert summary["stopped"] == "early_stopping"
    assert (summary["epochs"], summary["best_epoch"], summary["best_val_acc"]) == (3, 2, 0.6)
    assert load_checkpoint(tmp_path / "best.pt")["state"]["epoch"] == 2
    assert load_checkpoint(tmp_path / "last.pt")["state"]["bad_epochs"] == 1
    # A resumed run agrees that it is done; a larger patience lets it go on.
    assert run(tmp_path, model="san", max_epochs=100, patience=1, resume=True)["epochs"] == 3
    more = run(tmp_path, model="san", max_epochs=4, patience=5, resume=True)
    assert (more["epochs"], more["best_epoch"], more["best_val_acc"]) == (4, 4, 0.9)


def test_lr_schedule():
    assert [num_decays(e) for e in (1, 50, 51, 80, 81, 110, 111)] == [0, 0, 1, 1, 2, 2, 3]
    assert lr_at_epoch(50, 0.001) == 0.001
    assert lr_at_epoch(51, 0.001) == pytest.approx(0.0009)
    assert lr_at_epoch(81, 0.001) == pytest.approx(0.00081)
    assert lr_at_epoch(3, 1.0, decay_start=1, decay_every=1, decay_factor=0.5) == 0.25
    assert lr_at_epoch(10**6, 0.001, decay_factor=1.0) == 0.001
    with pytest.raises(ValueError):
        num_decays(0)


def test_lr_schedule_is_applied(tmp_path):
    summary = run(tmp_path, model="san", max_epochs=3, decay_start=1, decay_every=1, decay_factor=0.5, lr=0.004)
    assert [m["lr"] for m in metrics_lines(tmp_path / "metrics.jsonl")] == [0.004, 0.002, 0.001]
    assert load_checkpoint(tmp_path / "last.pt")["optimizer"]["param_groups"][0]["lr"] == 0.001
    assert summary["epochs"] == 3


class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, images, query):
        return ModelOutput(torch.log_softmax(self.fc(images.flatten(1)) * 100, dim=-1), ())


@pytest.mark.parametrize("clip_norm", [1e-3, None])
def test_train_step_clips_gradients(clip_norm):
    torch.manual_seed(0)
    model = _Linear()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    images, query, answer = torch.rand(8, 3, 4, 4), torch.zeros(8, dtype=torch.long), torch.arange(8) % 5
    loss, correct, grad_norm = train_step(model, opt, images, query, answer, clip_norm=clip_norm)
    grads = [p.grad for p in model.parameters()]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert grad_norm > 1e-1  # the raw gradient is large
    if clip_norm is None:
        assert total == pytest.approx(grad_norm.item(), rel=1e-5)
    else:
        assert total == pytest.approx(clip_norm, rel=1e-4)  # clipped to the norm, before the optimiser step
    for b, p, g in zip(before, model.parameters(), grads):
        torch.testing.assert_close(p.detach(), b - g)  # SGD(lr=1) stepped with the clipped gradient
    assert loss.ndim == 0 and 0 <= correct <= 8


def test_uniform_model_is_only_evaluated(tmp_path):
    summary = run(tmp_path, model="uniform")
    assert summary["stopped"] == "no_parameters" and summary["steps"] == 0
    (line,) = metrics_lines(tmp_path / "metrics.jsonl")
    assert line["epoch"] == 0
    assert line["val_acc"] == pytest.approx(float((VAL.answer == 0).mean()))  # argmax of a uniform row is class 0
    assert line["val_loss"] == pytest.approx(torch.log(torch.tensor(5.0)).item())
    assert summary["best_val_acc"] == line["val_acc"]
    model, _ = load_model(tmp_path / "best.pt")
    assert evaluate(model, VAL)["acc"] == line["val_acc"]


def test_lr_grid_picks_the_best(tmp_path):
    config = TrainConfig(**{**BASE, "model": "san", "max_epochs": 1, "out_dir": str(tmp_path)})
    result = lr_grid(config, [0.001, 0.005], train_data=TRAIN, val_data=VAL)
    accs = {r["lr"]: r["best_val_acc"] for r in result["runs"]}
    assert set(accs) == {0.001, 0.005} and result["complete"]
    assert result["best_val_acc"] == max(accs.values()) and accs[result["best_lr"]] == result["best_val_acc"]
    assert json.loads((tmp_path / "best.json").read_text())["best_lr"] == result["best_lr"]
    assert result["checkpoint"] == str(tmp_path / f"lr_{result['best_lr']:g}" / "best.pt")
    for lr in ("0.001", "0.005"):
        assert (tmp_path / f"lr_{lr}" / "metrics.jsonl").is_file()
    with pytest.raises(ValueError, match="positive"):
        lr_grid(config, [0.001, -1.0], train_data=TRAIN, val_data=VAL)


def test_resume_refusals(tmp_path, straight):
    out = straight[0]
    with pytest.raises(ResumeError, match="no checkpoint"):
        run(tmp_path / "empty", resume=True)
    for change in ({"lr": 0.002}, {"seed": 1}, {"batch_size": 50}, {"model": "san"}, {"dataset": "mbg"}):
        key = next(iter(change))
        with pytest.raises(ResumeError, match=f"{key}: "):
            train(TrainConfig(**{**BASE, "out_dir": str(out), "resume": True, **change}), train_data=TRAIN,
                  val_data=VAL)
    with pytest.raises(ResumeError, match="already holds a run"):
        run(out)


def test_config_validation(tmp_path):
    good = TrainConfig(**BASE)
    bad = [{"model": "nope"}, {"dataset": "cifar"}, {"lr": 0.0}, {"lr": -1e-3}, {"batch_size": 0},
           {"max_epochs": -1}, {"patience": -2}, {"clip_norm": 0.0}, {"decay_factor": 1.5}, {"compile_mode": "x"},
           {"backend": "numpy"}, {"train_file": "a.npz"}, {"num_train": 0}, {"amp": "yes"}, {"amp": 1}]
    for change in bad:
        with pytest.raises(ValueError):
            dataclasses.replace(good, **change)
    assert TrainConfig.from_dict({**good.to_dict(), "future_field": 1}) == good
    with pytest.raises(ValueError, match="larger than the training set"):
        run(tmp_path, batch_size=200)


def test_amp_bf16_run(tmp_path):
    summary = run(tmp_path, model="san", max_epochs=1, amp=True)
    (line,) = metrics_lines(tmp_path / "metrics.jsonl")
    assert summary["stopped"] == "max_epochs"
    assert all(math.isfinite(line[k]) for k in ("train_loss", "val_loss", "grad_norm"))


def test_amp_auto_is_resolved_and_recorded(tmp_path, monkeypatch):
    """amp="auto" turns into the device's answer before training; config.json records the bool that ran."""
    import pan.train.precision as precision

    for fast in (False, True):
        monkeypatch.setattr(precision, "fast_bf16", lambda device, fast=fast: fast)
        out = tmp_path / str(fast)
        run(out, model="san", max_epochs=1, amp="auto")
        assert json.loads((out / "config.json").read_text())["amp"] is fast


def test_resolve_amp():
    from pan.train.precision import fast_bf16, resolve_amp

    assert resolve_amp(True, "cpu") is True and resolve_amp(False, "cuda") is False
    assert resolve_amp("auto", "cpu") is fast_bf16("cpu")
    assert fast_bf16("meta") is False
    with pytest.raises(ValueError, match="amp must be"):
        resolve_amp("on", "cpu")


def test_library_does_not_import_the_cli():
    code = "import sys, pan.train; print(sorted(m for m in sys.modules if m.startswith('pan.cli')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
