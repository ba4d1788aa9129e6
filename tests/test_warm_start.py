"""``init_from`` / ``pan train --init-from``: a new run starts from an earlier checkpoint's weights (and only its
weights), refuses a checkpoint of another model, and resumes exactly like any run."""

from __future__ import annotations

import pytest
import torch

from pan.cli.main import main
from pan.data import make_dataset
from pan.train import RESUME_FIELDS, ResumeError, TrainConfig, train
from pan.train.checkpoint import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return (make_dataset("mref", "train", 40, seed=0, cache_dir=cache),
            make_dataset("mref", "val", 20, seed=0, cache_dir=cache))


def _config(out, **kw) -> TrainConfig:
    base = dict(model="pan-h-ctx", num_train=40, num_val=20, batch_size=10, max_epochs=1, backend="torch",
                device="cpu", quiet=True, checkpoint_every=0, optimizer="adam", lr=1e-3)
    return TrainConfig(**{**base, **kw}, out_dir=str(out))


@pytest.fixture(scope="module")
def source(tmp_path_factory, data):
    """A trained one-epoch run whose best.pt is the warm start."""
    out = tmp_path_factory.mktemp("source")
    train(_config(out / "run", seed=5), train_data=data[0], val_data=data[1])
    return out / "run" / "best.pt"


def _first_step_weights(monkeypatch, config, data) -> tuple[dict, dict]:
    """(the model's weights as the first optimiser step sees them, train's summary)."""
    import pan.train.mref_task as mref_task

    seen: list[dict] = []
    real_step = mref_task.train_step

    def spy(model, optimizer, *args, **kwargs):
        if not seen:
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            assert not optimizer.state, "the warm start must not bring optimiser state"
        return real_step(model, optimizer, *args, **kwargs)

    monkeypatch.setattr(mref_task, "train_step", spy)
    summary = train(config, train_data=data[0], val_data=data[1])
    return seen[0], summary


def test_first_step_sees_the_checkpoints_weights(tmp_path, monkeypatch, data, source):
    saved = load_checkpoint(source)["model"]
    warm, _ = _first_step_weights(monkeypatch, _config(tmp_path / "warm", init_from=str(source)), data)
    cold, _ = _first_step_weights(monkeypatch, _config(tmp_path / "cold"), data)
    assert warm.keys() == saved.keys()
    for k in saved:
        torch.testing.assert_close(warm[k], saved[k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(cold[k], saved[k]) for k in saved if saved[k].is_floating_point())
    assert load_checkpoint(tmp_path / "warm" / "last.pt")["config"]["init_from"] == str(source)


def test_warm_run_resumes_exactly_and_needs_the_same_start(tmp_path, data, source):
    assert "init_from" in RESUME_FIELDS
    straight = train(_config(tmp_path / "straight", init_from=str(source), max_epochs=2), train_data=data[0],
                     val_data=data[1])
    out = tmp_path / "resumed"
    first = train(_config(out, init_from=str(source), max_epochs=2, stop_after_steps=5), train_data=data[0],
                  val_data=data[1])
    assert first["stopped"] == "interrupted"
    with pytest.raises(ResumeError, match="init_from"):
        train(_config(out, max_epochs=2, resume=True), train_data=data[0], val_data=data[1])
    resumed = train(_config(out, init_from=str(source), max_epochs=2, resume=True), train_data=data[0],
                    val_data=data[1])
    assert resumed["param_digest"] == straight["param_digest"]


@pytest.mark.parametrize("kw, match", [
    ({"model": "san"}, "holds a pan-h-ctx model"),
    ({"head_dropout": 0.5}, "head dropout 0.5"),
])
def test_another_model_is_refused_before_training(tmp_path, data, source, kw, match):
    with pytest.raises(CheckpointError, match=match):
        train(_config(tmp_path / "other", init_from=str(source), **kw), train_data=data[0], val_data=data[1])
    assert not (tmp_path / "other" / "last.pt").exists()


def test_cli_refuses_a_start_inside_the_run_it_would_overwrite(tmp_path, data, source, capsys):
    import shutil

    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(source, out / "best.pt")
    shutil.copy(source, out / "last.pt")
    before = (out / "best.pt").read_bytes()
    code = main(["train", "--out", str(out), "--overwrite", "--init-from", str(out / "best.pt"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pan train: error: --init-from") and "inside --out" in err, err
    assert (out / "best.pt").read_bytes() == before
