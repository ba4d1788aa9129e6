"""`pan demo --pretrained`: the report and figure for a trained checkpoint without training, the shipped checkpoint
(what trained it, and that it answers by the query and attends to the queried digit), and the errors."""

from __future__ import annotations

import json

import pytest
import torch

from pan.assets import DEMO_CHECKPOINT
from pan.cli.main import main
from pan.data import make_dataset
from pan.evaluation.baselines import query_blind_accuracy, uniform_tpr
from pan.evaluation.metrics import evaluate as evaluate_attention
from pan.train import load_checkpoint, load_model
from pan.train.recipes import matching_recipe, recipe_settings
from pan.train.warm_start import images_per_epoch
from tests.tiny_runs import train_tiny_mref


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    summary = train_tiny_mref(root, "pan-h", "run")
    return root, summary["checkpoint"]


def test_pretrained_demo_reports_and_draws_without_training(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    root, checkpoint = tiny_checkpoint
    monkeypatch.setenv("PAN_CACHE_DIR", str(root / "cache"))
    monkeypatch.setattr("pan.cli.demo.PRESETS", {"cpu": ("demo", 20), "full": ("paper", 20)})
    monkeypatch.setattr("pan.train.train", lambda *a, **k: pytest.fail("--pretrained must not train"))
    out = tmp_path / "demo"
    argv = ["demo", "--pretrained", checkpoint, "--out", str(out), "--device", "cpu", "--backend", "torch"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "not trained here" in printed and "query-blind answer" in printed and "uniform attention" in printed
    report = json.loads((out / "demo.json").read_text())
    assert report["pretrained"] == checkpoint and report["model"] == "pan-h" and report["epochs"] == 1
    assert report["images_trained"] == 40 and report["header"]["git_sha"]
    assert 0 <= report["accuracy"] <= 1 and 0 < report["tpr"] < 1
    assert (out / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "eval_mref_test.json").read_text())["num_examples"] == 20


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "3"], "drop --epochs"),
    (["--minutes", "5", "--resume"], "drop --minutes, --resume"),
    (["--full"], "drop --full"),
    (["--model", "san"], "holds a pan-h model"),
])
def test_pretrained_demo_refuses_what_it_would_ignore(tiny_checkpoint, tmp_path, extra, message, capsys):
    argv = ["demo", "--pretrained", tiny_checkpoint[1], "--out", str(tmp_path / "d"), "--device", "cpu", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_pretrained_demo_names_an_unreadable_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint" * 10)
    assert main(["demo", "--pretrained", str(bad), "--out", str(tmp_path / "d"), "--device", "cpu"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_shipped_checkpoint_is_the_converged_focus_run_and_attends_to_the_query():
    """The file `pan demo --pretrained` reads: PAN[H]+CTX trained with the focus term from a warm start, shipped
    from the run's best checkpoint after early stopping, with the two commands that made it and the training images
    they add up to; weights only. On fresh test examples it answers far above what ignoring the query gives, and its
    attention lands on the queried digit far more than uniform attention (and than the paper's loss alone gives)."""
    ckpt = load_checkpoint(DEMO_CHECKPOINT)
    config, provenance, state = ckpt["config"], ckpt["provenance"], ckpt["state"]
    assert config["model"] == "pan-h-ctx" and config["dataset"] == "mref" and config["seed"] == 0
    assert config["recipe"] == "converge" and config["augment_shift"] == 8
    assert config["gate_sparsity_kind"] == "focus" and list(config["gate_sparsity"]) == [0.3, 0.1, 0.1]
    assert ckpt["optimizer"] is None and ckpt["rng"] is None and DEMO_CHECKPOINT.stat().st_size < 400 * 1024
    summary = provenance["summary"]
    assert summary["stopped"] == "early_stopping" and provenance["source"] == "best.pt"
    assert state["epoch"] == summary["best_epoch"] == 22
    first, last = provenance["commands"]
    assert first.startswith("pan train ") and "--init-from" not in first and "--augment-shift 8" in first
    assert last.startswith("pan train ") and f"--init-from {config['init_from']}" in last
    assert "--gate-sparsity-kind focus" in last and "--gate-sparsity 0.3,0.1,0.1" in last
    per_epoch = images_per_epoch(config["num_train"], config["batch_size"])
    assert provenance["images_before_warm_start"] == 34 * per_epoch
    assert provenance["images_trained"] == (34 + state["epoch"]) * per_epoch
    model, _ = load_model(DEMO_CHECKPOINT, backend="torch")
    test = make_dataset("mref", "test", 300, seed=7, cache_dir=None)
    with torch.no_grad():
        result = evaluate_attention(model, test)
    assert result["accuracy"] > query_blind_accuracy(test) + 0.4
    assert result["tpr"] > 0.25 > 10 * uniform_tpr(test)  # the paper's loss alone: ~0.10 at this accuracy


def test_matching_recipe_names_the_settings_a_run_used():
    demo = {**recipe_settings("demo"), "amp": False, "recipe": "demo", "model": "pan-h-ctx"}
    assert matching_recipe(demo) == "demo"
    assert matching_recipe({**demo, **recipe_settings("demo-long"), "amp": True}) == "demo-long"
    assert matching_recipe({**recipe_settings("cpu"), "amp": False}) == "cpu"  # demo adds the term: not demo
    assert matching_recipe({**demo, "max_epochs": 4}) is None  # a changed setting matches no recipe
    assert matching_recipe({"recipe": "paper", "optimizer": "rmsprop"}) is None


def test_pretrained_demo_never_mixes_with_a_trained_run(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """An --out holding a trained run is refused (nothing replaced); --overwrite replaces the whole run, so no
    best.pt / metrics.jsonl / summary.json of the trained model is left beside the pretrained report; the default
    --out of --pretrained is not the trained demo's."""
    import shutil
    from pathlib import Path

    root, checkpoint = tiny_checkpoint
    monkeypatch.setenv("PAN_CACHE_DIR", str(root / "cache"))
    monkeypatch.setattr("pan.cli.demo.PRESETS", {"cpu": ("demo", 20), "full": ("paper", 20)})
    trained = tmp_path / "demo"
    shutil.copytree(Path(checkpoint).parent, trained)
    (trained / "eval_mref_test.json").write_text('{"model": "pan-h", "dataset": "mref", "accuracy": 0.5, "tpr": 0.1}')
    before = {p.name: p.read_bytes() for p in trained.iterdir()}
    argv = ["demo", "--pretrained", checkpoint, "--device", "cpu", "--backend", "torch"]
    assert main([*argv, "--out", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in trained.iterdir()} == before
    assert main([*argv, "--out", str(trained), "--overwrite"]) == 0
    assert sorted(p.name for p in trained.iterdir()) == ["attention.png", "demo.json", "eval_mref_test.json"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(argv) == 0
    wrote = capsys.readouterr().out.rsplit("wrote ", 1)[1]
    for name in ("attention.png", "eval_mref_test.json", "demo.json"):
        assert (tmp_path / "runs" / "demo-pretrained" / name).is_file() and name in wrote
