"""Timed checkpoints survive a crash: a run in a subprocess writes checkpoints on the wall-clock timer inside an
epoch, is killed with SIGKILL mid-epoch (no handler runs), and resumed; it ends with the same weights (bitwise, CPU),
optimizer state and metrics (timing fields aside) as an uninterrupted run. MREF and Visual Genome (tiny model)."""

from __future__ import annotations

import json
import signal

import pytest

from pan.train import TrainConfig, load_checkpoint, train
from tests.engine_helpers import real_config, run_script, same_optimizer, same_weights, tiny_real_model, write_tiny_vg
from tests.test_train_support import metrics_lines, single_thread, synthetic_dataset  # noqa: F401

EVERY_STEP = 1e-6  # minutes: the timer is due before every step

MREF = dict(model="san", num_train=40, num_val=20, batch_size=10, max_epochs=2, backend="torch", device="cpu",
            quiet=True)  # 4 steps per epoch

CHILD = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
task, out, kill_at, overrides = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
calls = [0]

def killing(step):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: as a crash or the OOM killer
        return step(*args, **kwargs)
    return wrapped

if task == "mref":
    import pan.train.mref_task as module
    from pan.train import TrainConfig, train
    from tests.test_train_support import synthetic_dataset
    module.train_step = killing(module.train_step)
    train(TrainConfig(out_dir=out, **overrides), train_data=synthetic_dataset(40, seed=0),
          val_data=synthetic_dataset(20, seed=1))
else:
    import pan.train.real_images as real_images
    from pan.train.real_task import RealImageTask
    from tests.engine_helpers import real_config, tiny_real_model
    real_images.build_real_model = tiny_real_model
    RealImageTask.train_step = killing(RealImageTask.train_step)
    real_images.train_real_images(real_config(overrides.pop("data"), out, **overrides), progress=False)
"""


def _kill_mid_epoch(tmp_path, task: str, out, kill_at: int, overrides: dict):
    proc = run_script(CHILD, [task, str(out), str(kill_at), json.dumps(overrides)], tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:]
    ckpt = load_checkpoint(out / "last.pt")
    return ckpt


def test_mref_sigkill_after_a_timed_checkpoint_resumes_exactly(tmp_path):
    train_data, val_data = synthetic_dataset(40, seed=0), synthetic_dataset(20, seed=1)
    straight = train(TrainConfig(**MREF, out_dir=str(tmp_path / "straight"), checkpoint_every=0),
                     train_data=train_data, val_data=val_data)
    out = tmp_path / "killed"
    # killed inside step 7 = epoch 2, step 3; the timer wrote last.pt just before that step
    ckpt = _kill_mid_epoch(tmp_path, "mref", out, 7, {**MREF, "checkpoint_every": EVERY_STEP})
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 2)
    assert ckpt["accum"].shape == (1, 4) and ckpt["accum"][0, 2] == 20  # 2 steps x 10 examples
    assert not list(out.glob(".*.tmp"))  # atomic writes: no half-written file left behind
    resumed = train(TrainConfig(**MREF, out_dir=str(out), checkpoint_every=EVERY_STEP, resume=True),
                    train_data=train_data, val_data=val_data)
    assert resumed["param_digest"] == straight["param_digest"]
    assert (resumed["steps"], resumed["epochs"], resumed["stopped"]) == (8, 2, "max_epochs")
    assert metrics_lines(out / "metrics.jsonl") == metrics_lines(tmp_path / "straight" / "metrics.jsonl")
    a, b = load_checkpoint(out / "last.pt"), load_checkpoint(tmp_path / "straight" / "last.pt")
    assert same_weights(a["model"], b["model"]) and same_optimizer(a["optimizer"], b["optimizer"])


def test_real_images_sigkill_after_a_timed_checkpoint_resumes_exactly(tmp_path, monkeypatch):
    import pan.train.real_images as real_images

    monkeypatch.setattr(real_images, "build_real_model", tiny_real_model)
    data = write_tiny_vg(tmp_path / "vg")
    straight = real_images.train_real_images(real_config(data, tmp_path / "straight", checkpoint_every=0),
                                             progress=False)
    out = tmp_path / "killed"
    ckpt = _kill_mid_epoch(tmp_path, "vg", out, 7, {"data": str(data), "checkpoint_every": EVERY_STEP})
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 2) and ckpt["accum"].shape == (1, 3)
    assert ckpt["config"]["kind"] == "real-images" and ckpt["vocab"]["classes"]
    resumed = real_images.train_real_images(real_config(data, out, checkpoint_every=EVERY_STEP), resume=True,
                                            progress=False)
    assert resumed["param_digest"] == straight["param_digest"]
    assert resumed["epochs_done"] == 2 and resumed["best_weighted_map"] == straight["best_weighted_map"]
    assert metrics_lines(out / "metrics.jsonl") == metrics_lines(tmp_path / "straight" / "metrics.jsonl")
    a, b = load_checkpoint(out / "last.pt"), load_checkpoint(tmp_path / "straight" / "last.pt")
    assert same_weights(a["model"], b["model"]) and same_optimizer(a["optimizer"], b["optimizer"])


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), True, "10"])
def test_checkpoint_every_is_validated(tmp_path, value):
    from pan.train.real_images import RealImageConfig

    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(**MREF, checkpoint_every=value)
    with pytest.raises(ValueError, match="checkpoint_every"):
        RealImageConfig(data_dir=str(tmp_path), checkpoint_every=value).validate()


def test_checkpoint_every_flag(capsys):
    from pan.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--checkpoint-every", "-1"])
    assert exit_info.value.code == 2 and "--checkpoint-every" in capsys.readouterr().err
