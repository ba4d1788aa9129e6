"""Contracts of one training step and of the loop that are invisible in finite losses: ``amp=True`` really computes
the convolutions in bf16 (a forward hook sees the dtype, and the loss differs from fp32 by a bf16-sized amount) in
the step, in the loop's training and in its evaluation; the lr schedule is the lr the optimiser steps with, from the
first step of each epoch; clipping bounds the update."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.modules.module as module_hooks
import torch.optim.optimizer as optimizer_hooks
from torch import nn

from pan.train import TrainConfig, lr_at_epoch, train, train_step
from pan.train.data import ResidentData
from pan.train.step import evaluate_sums
from tests.test_train_support import TinyPAN, single_thread, synthetic_dataset  # noqa: F401


def _batch():
    data = synthetic_dataset(8, seed=5, size=10)
    images = torch.from_numpy(data.images[data.image_index]).permute(0, 3, 1, 2).float().div(255)
    return images, torch.from_numpy(data.query), torch.from_numpy(data.answer)


@contextlib.contextmanager
def _conv_output_dtypes():
    """Records (module.training, output dtype) of every Conv2d / Linear forward while active (all modules)."""
    seen: list[tuple[bool, torch.dtype]] = []

    def hook(module, inputs, output):
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            seen.append((module.training, output.dtype))

    handle = module_hooks.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def _step(amp: bool):
    torch.manual_seed(0)
    model = TinyPAN("torch")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with _conv_output_dtypes() as seen:
        loss, _, grad_norm = train_step(model, optimizer, *_batch(), amp=amp)
    return model, loss, grad_norm, {dtype for _, dtype in seen}


def test_amp_step_computes_in_bf16_and_keeps_fp32_weights():
    model32, loss32, _, dtypes32 = _step(amp=False)
    model16, loss16, grad16, dtypes16 = _step(amp=True)
    assert dtypes32 == {torch.float32}
    assert dtypes16 == {torch.bfloat16}, f"amp=True ran the convolutions in {dtypes16}"
    assert loss16.dtype == torch.float32 and torch.isfinite(grad16)
    # bf16 has an 8-bit mantissa: the loss moves by ~1e-3 relative, not 0 and not by much
    rel = abs(loss16.item() - loss32.item()) / abs(loss32.item())
    assert 1e-6 < rel < 5e-2, rel
    for p16, p32 in zip(model16.parameters(), model32.parameters()):
        assert p16.dtype == torch.float32 and p16.grad.dtype == torch.float32
        assert torch.isfinite(p16).all()
        torch.testing.assert_close(p16, p32, rtol=0.1, atol=2e-2)  # the same step, at bf16 accuracy


def test_amp_evaluation_computes_in_bf16():
    torch.manual_seed(0)
    model = TinyPAN("torch")
    data = ResidentData(synthetic_dataset(8, seed=5, size=10), torch.device("cpu"))
    sums = {}
    for amp in (False, True):
        with _conv_output_dtypes() as seen:
            sums[amp] = evaluate_sums(model, data, 4, amp=amp)
        assert {dtype for _, dtype in seen} == {torch.bfloat16 if amp else torch.float32}
    assert sums[True][2] == sums[False][2] == 8
    assert sums[True][0] != sums[False][0]  # the loss was computed at another precision


def _tiny_run(tmp_path, **overrides) -> dict:
    config = dict(model="san", num_train=10, num_val=6, batch_size=5, max_epochs=1, backend="torch", device="cpu",
                  quiet=True, out_dir=str(tmp_path))
    return train(TrainConfig(**{**config, **overrides}), train_data=synthetic_dataset(10, seed=0),
                 val_data=synthetic_dataset(6, seed=1))


@pytest.mark.parametrize("amp", [True, False])
def test_training_loop_trains_and_evaluates_at_the_configured_precision(tmp_path, amp):
    with _conv_output_dtypes() as seen:
        _tiny_run(tmp_path, amp=amp)
    want = torch.bfloat16 if amp else torch.float32
    for training in (True, False):
        dtypes = {dtype for mode, dtype in seen if mode == training}
        assert dtypes == {want}, f"{'training' if training else 'evaluation'} ran in {dtypes}, amp={amp}"


def test_the_optimizer_steps_with_the_scheduled_lr_from_the_first_step_of_each_epoch(tmp_path):
    """decay_start 1, every epoch, x0.5: steps of epoch e use lr * 0.5 ** (e - 1), all of them (a schedule applied
    after the epoch, or one epoch late, shows up in the first step of an epoch)."""
    lrs: list[float] = []
    handle = optimizer_hooks.register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"]))
    try:
        summary = _tiny_run(tmp_path, max_epochs=3, lr=0.004, decay_start=1, decay_every=1, decay_factor=0.5)
    finally:
        handle.remove()
    steps = 2  # 10 examples, batch 5
    assert summary["steps"] == 3 * steps
    expected = [lr_at_epoch(e, 0.004, 1, 1, 0.5) for e in (1, 2, 3) for _ in range(steps)]
    assert lrs == pytest.approx(expected) and expected[0] == 0.004 and expected[-1] == 0.001


def test_clipping_bounds_the_update_of_a_huge_gradient():
    """SGD lr 1 with clip_norm c: the parameters move by exactly c in total L2 norm; the reported norm is the
    pre-clip one."""
    torch.manual_seed(0)
    model = TinyPAN("torch")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    images, query, answer = _batch()
    _, _, grad_norm = train_step(model, optimizer, images * 1e3, query, answer, clip_norm=0.01)
    moved = (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm()
    assert grad_norm > 0.1
    torch.testing.assert_close(moved, torch.tensor(0.01), rtol=1e-3, atol=0)


def test_multilabel_nll_hand_computed():
    """-sum_a [y log p + (1 - y) log(1 - p)], batch mean: p = (0.8, 0.3) with labels (1, 0) and p = (0.5, 0.9) with
    (0, 1) give ((-ln .8 - ln .7) + (-ln .5 - ln .9)) / 2; it falls as p moves toward the labels."""
    from pan.train.real_images import multilabel_nll

    p = torch.tensor([[0.8, 0.3], [0.5, 0.9]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    want = (-math.log(0.8) - math.log(0.7) - math.log(0.5) - math.log(0.9)) / 2
    assert multilabel_nll(p.log(), (1 - p).log(), target).item() == pytest.approx(want, rel=1e-6)
    closer = torch.tensor([[0.9, 0.2], [0.4, 0.95]])
    assert multilabel_nll(closer.log(), (1 - closer).log(), target) < multilabel_nll(p.log(), (1 - p).log(), target)


def test_best_checkpoint_holds_the_best_epochs_weights_and_patience_stops_the_run(tmp_path):
    """best.pt is the first epoch with the highest validation accuracy (its weights re-evaluate to that accuracy and
    loss), not the last epoch; the run stops ``patience`` epochs after it."""
    import json

    from pan.train import evaluate, load_checkpoint, load_model

    val = synthetic_dataset(6, seed=1)
    summary = _tiny_run(tmp_path, max_epochs=12, patience=2, lr=0.1, optimizer="adam")  # val acc 0.5, 0, 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if x.strip()]
    accs = [m["val_acc"] for m in lines if m["epoch"] >= 1]
    best_epoch = summary["best_epoch"]
    assert best_epoch == 1 + accs.index(max(accs)) and summary["best_val_acc"] == max(accs)
    assert summary["stopped"] == "early_stopping" and summary["epochs"] == best_epoch + 2
    assert load_checkpoint(tmp_path / "best.pt")["state"]["epoch"] == best_epoch
    best, _ = load_model(tmp_path / "best.pt", backend="torch")
    again = evaluate(best, val)
    assert again["acc"] == pytest.approx(summary["best_val_acc"])
    assert again["loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)
    last, _ = load_model(tmp_path / "last.pt", backend="torch")
    assert evaluate(last, val)["loss"] == pytest.approx(lines[-1]["val_loss"], rel=1e-5)
    assert again["loss"] != pytest.approx(lines[-1]["val_loss"], rel=1e-5)  # best.pt is not the last weights
