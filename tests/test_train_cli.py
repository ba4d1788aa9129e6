"""`pan train`: bad arguments exit 2 with a clear message; tiny runs from dataset files and from generated data;
--resume and --lr-grid."""

from __future__ import annotations

import json

import pytest

from pan.cli.main import main
from tests.test_train_support import metrics_lines, single_thread, synthetic_dataset  # noqa: F401

QUICK = ["--model", "san", "--backend", "torch", "--device", "cpu", "--batch-size", "25", "--quiet"]


def run_cli(argv: list[str]) -> int:
    try:
        return main(["train", *argv])
    except SystemExit as exc:  # argparse errors
        return int(exc.code)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli")
    for name, n, seed in (("train", 50, 0), ("val", 25, 0)):
        data = synthetic_dataset(n, seed=seed + (name == "val"))
        data.meta = {"name": "mref", "split": name, "num_examples": n, "seed": seed}  # as `pan data generate` writes
        data.save(path / f"{name}.npz")
    return ["--train-file", str(path / "train.npz"), "--val-file", str(path / "val.npz")]


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--epochs", "-1"], "--epochs: expected a positive integer, got -1"),
    (["--epochs", "many"], "--epochs: expected a positive integer"),
    (["--lr", "0"], "--lr: expected a positive number, got 0"),
    (["--lr", "-0.001"], "--lr: expected a positive number"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),
    (["--batch-size", "-5"], "--batch-size: expected a positive integer"),
    (["--patience", "-1"], "--patience: expected a non-negative integer"),
    (["--lr-grid", "0.001,abc"], "--lr-grid: expected a positive number"),
    (["--lr-grid", "0.001,0.001"], "duplicate learning rates"),
    (["--dataset", "cifar"], "invalid choice"),
    (["--compile-mode", "fastest"], "invalid choice"),
    (["--train-file", "a.npz"], "--train-file and --val-file go together"),
    (["--train-file", "missing.npz", "--val-file", "missing2.npz"], "--train-file missing.npz: no such file"),
])
def test_bad_arguments_exit_2(argv, message, tmp_path, capsys):
    assert run_cli([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pan train: error:" in err and message in err, err
    assert not (tmp_path / "out").exists()


def test_resume_without_checkpoint_exits_2(tmp_path, capsys):
    assert run_cli(["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "--resume: no checkpoint at" in capsys.readouterr().err
    assert run_cli(["--resume", "--lr-grid", "0.001,0.002", "--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_train_resume_and_refusals(tmp_path, files, capsys):
    out = str(tmp_path / "run")
    assert run_cli([*QUICK, *files, "--epochs", "1", "--out", out]) == 0
    assert "max_epochs after 1 epochs" in capsys.readouterr().out
    assert len(metrics_lines(tmp_path / "run" / "metrics.jsonl")) == 1
    # A second run in the same directory must say --resume or --overwrite.
    assert run_cli([*QUICK, *files, "--epochs", "1", "--out", out]) == 2
    assert "already holds a run" in capsys.readouterr().err
    # --resume with another lr is refused, naming the field.
    assert run_cli([*QUICK, *files, "--epochs", "2", "--lr", "0.002", "--resume", "--out", out]) == 2
    assert "lr: 0.001 (checkpoint) != 0.002 (now)" in capsys.readouterr().err
    assert run_cli([*QUICK, *files, "--epochs", "2", "--resume", "--out", out]) == 0
    assert [m["epoch"] for m in metrics_lines(tmp_path / "run" / "metrics.jsonl")] == [1, 2]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["steps"] == 4


def test_lr_grid(tmp_path, files, capsys):
    out = tmp_path / "grid"
    assert run_cli([*QUICK, *files, "--epochs", "1", "--lr-grid", "0.001,0.004", "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["best_lr"] in (0.001, 0.004) and best["complete"]
    assert (out / "lr_0.001" / "best.pt").is_file() and (out / "lr_0.004" / "best.pt").is_file()
    assert "best lr" in capsys.readouterr().out


def test_generated_dataset(tmp_path):
    argv = [*QUICK, "--dataset", "mref", "--num-train", "40", "--num-val", "20", "--batch-size", "20",
            "--epochs", "1", "--no-cache", "--out", str(tmp_path / "mref")]
    assert run_cli(argv) == 0
    (line,) = metrics_lines(tmp_path / "mref" / "metrics.jsonl")
    assert line["epoch"] == 1 and line["step"] == 2


@pytest.fixture(scope="module")
def mdist_files(tmp_path_factory):
    """Tiny MDIST train and test splits written by `pan data generate`."""
    root = tmp_path_factory.mktemp("mdist")
    for split, n in (("train", 40), ("test", 20)):
        argv = ["data", "generate", "--dataset", "mdist", "--split", split, "--num-examples", str(n), "--no-cache",
                "--quiet", "--out", str(root)]
        assert main(argv) == 0
    return root


def test_train_file_records_what_was_trained_on(mdist_files, tmp_path, capsys):
    """Dataset, sizes and data seed come from the files' own metadata (not the --dataset / --num-train defaults);
    flags that contradict them are refused; a test split used for training or validation draws a warning."""
    files = ["--train-file", str(mdist_files / "mdist_train.npz"), "--val-file", str(mdist_files / "mdist_test.npz")]
    base = [*QUICK, *files, "--batch-size", "20", "--epochs", "1"]
    for extra, message in ((["--dataset", "mbg"], "--dataset mbg contradicts --train-file"),
                           (["--num-train", "100"], "--num-train 100 contradicts --train-file"),
                           (["--num-val", "5"], "--num-val 5 contradicts --val-file"),
                           (["--data-seed", "3"], "--data-seed 3 contradicts --train-file")):
        assert run_cli([*base, *extra, "--out", str(tmp_path / "refused")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "refused").exists()
    out = tmp_path / "run"
    assert run_cli([*base, "--out", str(out)]) == 0  # no --dataset: the file's mdist, not the default mref
    err = capsys.readouterr().err
    assert "warning: --val-file" in err and "is a test split" in err
    config = json.loads((out / "config.json").read_text())
    assert (config["dataset"], config["num_train"], config["num_val"], config["data_seed"]) == ("mdist", 40, 20, 0)
    assert config["train_file"] == files[1] and config["val_file"] == files[3]
    assert config["data_files"]["train"] == {"file": files[1], "dataset": "mdist", "split": "train",
                                             "num_examples": 40, "seed": 0}
    assert config["data_files"]["val"]["split"] == "test"


def test_bad_train_files_are_one_line(tmp_path, files, capsys):
    (tmp_path / "empty.npz").write_bytes(b"")
    good = open(files[1], "rb").read()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    np_file = tmp_path / "other.npz"
    import numpy as np

    np.savez(np_file, x=np.zeros(3))
    for path, message in ((tmp_path, "is a directory"), (tmp_path / "empty.npz", "is empty"),
                          (tmp_path / "truncated.npz", "not a readable dataset file"),
                          (np_file, "not a dataset file of `pan data generate`")):
        assert run_cli([*QUICK, "--train-file", str(path), "--val-file", files[3], "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert f"--train-file {path}" in err and message in err and len(err.strip().splitlines()) == 1, err
