"""The evaluation side of the `pan` CLI end to end on a tiny run: train -> eval -> figure -> table, bad arguments."""

from __future__ import annotations

import json

import pytest

from pan.cli.main import main
from pan.data import make_dataset
from pan.train.precision import fast_bf16
from tests.tiny_runs import train_tiny_mref


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    summary = train_tiny_mref(root, "pan-h-ctx", "pan-h-ctx")
    return root, summary


def test_eval_figure_table(tiny_run, monkeypatch, capsys):
    root, summary = tiny_run
    monkeypatch.setenv("PAN_CACHE_DIR", str(root / "cache"))
    out = root / "pan-h-ctx" / "eval_mref_test.json"
    assert main(["eval", "--checkpoint", summary["checkpoint"], "--num-examples", "30", "--device", "cpu",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "pan-h-ctx" and result["dataset"] == "mref" and result["num_examples"] == 30
    assert result["checkpoint_epoch"] == summary["best_epoch"] == 1  # which epoch's weights were evaluated
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 < result["tpr"] < 1.0
    assert sum(b["count"] for b in result["accuracy_by_scale"].values()) == 30
    png = root / "fig.png"
    assert main(["figure", "--checkpoint", summary["checkpoint"], "--num-examples", "30", "--device", "cpu",
                 "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["table", "--results", str(root)]) == 0
    table = capsys.readouterr().out
    assert "PAN[H]+CTX" in table and f"{100 * result['accuracy']:.2f} / {100 * result['tpr']:.2f}" in table
    assert "(98.53 / 62.36)" in table


def test_eval_on_a_data_file(tiny_run, tmp_path, monkeypatch, capsys):
    """`pan eval --data-file` scores the file's own examples (here digits kept off the blind band), names its result
    after the file, records where the examples came from, and stays out of `pan table`."""
    from pan.data import PanDataset
    from pan.evaluation.metrics import evaluate
    from pan.train import load_model

    root, summary = tiny_run
    monkeypatch.setenv("PAN_CACHE_DIR", str(root / "cache"))
    data_dir = tmp_path / "clear6"
    assert main(["data", "generate", "--dataset", "mref", "--split", "test", "--num-examples", "30",
                 "--clear-border", "6", "--out", str(data_dir), "--quiet"]) == 0
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = run_dir / "best.pt"
    ckpt.write_bytes(open(summary["checkpoint"], "rb").read())
    assert main(["eval", "--checkpoint", str(ckpt), "--data-file", str(data_dir / "mref_test.npz"),
                 "--device", "cpu"]) == 0
    out = run_dir / "eval_clear6_mref_test.json"
    result = json.loads(out.read_text())
    model, _ = load_model(ckpt, backend="torch")
    expected = evaluate(model, PanDataset.load(data_dir / "mref_test.npz"))
    assert result["num_examples"] == 30 and result["accuracy"] == pytest.approx(expected["accuracy"])
    assert result["tpr"] == pytest.approx(expected["tpr"], rel=1e-6)
    assert result["data_meta"]["clear_border"] == 6 and result["split"] == "test" and result["dataset"] == "mref"
    capsys.readouterr()
    assert main(["table", "--results", str(tmp_path)]) == 0
    assert "\n0 of our results" in capsys.readouterr().out  # a data file's examples are not the paper's split
    assert main(["eval", "--checkpoint", str(ckpt), "--data-file", str(data_dir / "mref_test.npz"), "--seed", "1",
                 "--device", "cpu"]) == 2
    assert "--seed does not go with it" in capsys.readouterr().err


def test_uniform_baseline_needs_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "eval.json"
    assert main(["eval", "--model", "uniform", "--dataset", "mref", "--num-examples", "40", "--device", "cpu",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    data = make_dataset("mref", "test", 40, seed=0, cache_dir=tmp_path / "cache")
    mask_fraction = sum((data.target_mask(i)).mean() for i in range(40)) / 40
    assert result["tpr"] == pytest.approx(mask_fraction, rel=1e-6)


@pytest.mark.parametrize("argv", [
    ["eval"],
    ["eval", "--checkpoint", "/nonexistent/best.pt"],
    ["eval", "--num-examples", "0", "--model", "uniform"],
    ["figure", "--checkpoint", "/nonexistent/best.pt"],
    ["table", "--results", "/nonexistent"],
    ["demo", "--epochs", "0"],
    ["demo", "--model", "resnet"],
])
def test_bad_arguments_exit_2(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    printed = "".join(capsys.readouterr())  # stdout + stderr
    last = printed.strip().splitlines()[-1] if printed.strip() else ""
    named = [a for a in argv[1:] if a.startswith("--") or "/" in a] or ["--checkpoint"]
    assert last.startswith(f"pan {argv[0]}") and any(word in last for word in named), printed  # names the argument
    assert "Traceback" not in printed


@pytest.fixture(scope="module")
def broken_checkpoints(tiny_run, tmp_path_factory):
    """A truncated copy of a real checkpoint, random bytes, a valid torch file that is not a checkpoint, and a
    checkpoint whose weights do not fit its model."""
    import torch

    root = tmp_path_factory.mktemp("broken")
    good = open(tiny_run[1]["checkpoint"], "rb").read()
    files = {"truncated": good[: len(good) // 2], "garbage": bytes(range(256)) * 40}
    for name, data in files.items():
        (root / f"{name}.pt").write_bytes(data)
    torch.save({"weights": torch.ones(3)}, root / "foreign.pt")
    ckpt = torch.load(tiny_run[1]["checkpoint"], weights_only=True)
    ckpt["model"] = {k: v[..., :1] if v.ndim else v for k, v in ckpt["model"].items()}
    torch.save(ckpt, root / "misfit.pt")
    return root


@pytest.mark.parametrize("kind", ["truncated", "garbage", "foreign", "misfit"])
@pytest.mark.parametrize("command", ["eval", "figure"])
def test_unreadable_checkpoint_names_the_file_and_exits_2(broken_checkpoints, tmp_path, kind, command, capsys):
    path = broken_checkpoints / f"{kind}.pt"
    argv = [command, "--checkpoint", str(path), "--num-examples", "10", "--device", "cpu",
            "--out", str(tmp_path / ("out.json" if command == "eval" else "out.png"))]
    assert main(argv) == 2
    captured = capsys.readouterr()
    message = captured.out + captured.err
    assert str(path) in message and "Traceback" not in message


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_resume_from_unreadable_checkpoint_exits_2(broken_checkpoints, tmp_path, kind, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes((broken_checkpoints / f"{kind}.pt").read_bytes())
    argv = ["train", "--model", "san", "--num-train", "40", "--num-val", "20", "--batch-size", "20", "--epochs", "1",
            "--device", "cpu", "--out", str(run_dir), "--resume", "--quiet"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert str(run_dir / "last.pt") in captured.out + captured.err


def test_demo_end_to_end_on_a_tiny_recipe(tmp_path, monkeypatch, capsys):
    """`pan demo` with the demo recipe shrunk (the gate-sparsity term on from the first epoch): trains, evaluates
    against both baselines, draws, writes demo.json."""
    from pan.train import recipes

    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    tiny = {**recipes.RECIPES["demo"], "num_train": 64, "num_val": 20, "max_epochs": 1, "batch_size": 32,
            "gate_sparsity_start": 0}
    monkeypatch.setitem(recipes.RECIPES, "demo", tiny)
    monkeypatch.setattr("pan.cli.demo.PRESETS", {"cpu": ("demo", 20), "full": ("paper", 20)})
    out = tmp_path / "demo"
    measured = []

    def fixed_speed(config, device, **kw):  # what the epochs are fitted to: 3 epochs in the 1-minute budget below
        measured.append(config.batch_size)
        return 3 * (64 + (20 + 20) / 3) / 60

    monkeypatch.setattr("pan.train.budget.measure_images_per_s", fixed_speed)
    argv = ["demo", "--out", str(out), "--device", "cpu", "--backend", "torch", "--quiet", "--minutes", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "query-blind answer" in printed and "uniform attention" in printed and "fitted to 2 minutes" in printed
    report = json.loads((out / "demo.json").read_text())
    assert report["minutes_budget"] == 2 and report["epochs"] == 3 and measured == [32]
    assert report["recipe"] == "demo" and report["header"]["git_sha"]
    assert 0 <= report["query_blind_accuracy"] <= 1 and 0 < report["uniform_tpr"] < 0.2
    assert (out / "attention.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((out / "config.json").read_text())
    assert (config["optimizer"], config["channels_last"]) == ("adam", True)
    assert config["amp"] is fast_bf16("cpu") and report["amp"] is config["amp"]  # the recipe's "auto", resolved
    assert (config["gate_sparsity"], config["gate_sparsity_kind"], config["gate_sparsity_start"]) == (0.3, "focus", 0)
    assert (config["max_epochs"], config["patience"], config["decay_start"]) == (3, 3, 2)
    # a resumed demo keeps the schedule it recorded, whatever the machine measures now
    monkeypatch.setattr("pan.train.budget.measure_images_per_s", lambda *a, **k: 1e9)
    assert main(argv + ["--resume"]) == 0
    assert "the interrupted run's schedule" in capsys.readouterr().out and measured == [32]
    assert json.loads((out / "config.json").read_text())["max_epochs"] == 3


def test_fit_schedule_to_a_time_budget():
    from pan.train.budget import fit_schedule, measure_images_per_s
    from pan.train.config import TrainConfig

    # 30K train + 2K evaluated examples at 200 images/s: ~153 s an epoch; 15 minutes less 60 s reserve -> 5 epochs
    plan = fit_schedule(200, 900, num_train=30_000, num_val=2_000)
    assert (plan["max_epochs"], plan["patience"], plan["decay_start"]) == (5, 5, 3)
    assert fit_schedule(500, 900, num_train=30_000, num_val=2_000)["max_epochs"] == 13
    nine = fit_schedule(350, 900, num_train=30_000, num_val=2_000)
    assert (nine["max_epochs"], nine["decay_start"]) == (9, 5)  # the fixed demo recipe's schedule
    assert fit_schedule(10, 900, num_train=30_000, num_val=2_000)["max_epochs"] == 3  # min_epochs
    assert fit_schedule(1e6, 900, num_train=30_000, num_val=2_000)["max_epochs"] == 30  # max_epochs
    with pytest.raises(ValueError, match="positive"):
        fit_schedule(0, 900, num_train=10, num_val=10)
    speed = measure_images_per_s(TrainConfig(model="san", batch_size=4), "cpu", warmup=1, steps=2, image_size=100)
    assert 0 < speed < float("inf")


def test_table1_file_round_trip(tiny_run, tmp_path, monkeypatch, capsys):
    """`pan table --write` turns runs into a Table 1 file with the issue's row fields; `pan table --results FILE`
    prints the same numbers beside the paper's."""
    root, summary = tiny_run
    monkeypatch.setenv("PAN_CACHE_DIR", str(root / "cache"))
    assert main(["eval", "--checkpoint", summary["checkpoint"], "--num-examples", "30", "--device", "cpu",
                 "--overwrite"]) == 0  # the earlier test may have evaluated this run already
    table_file = tmp_path / "table1-cpu-test.json"
    assert main(["table", "--results", str(root), "--write", str(table_file)]) == 0
    data = json.loads(table_file.read_text())
    assert data["header"]["git_sha"] and len(data["rows"]) == 1
    row = data["rows"][0]
    for key in ("model", "dataset", "accuracy", "tpr", "scale_acc", "steps", "seed", "backend", "recipe"):
        assert key in row, key
    assert (row["model"], row["dataset"], row["steps"], row["recipe"]) == ("pan-h-ctx", "mref", 2, "paper")
    assert 0 <= row["accuracy"] <= 100 and len(row["scale_acc"]) == 5
    capsys.readouterr()
    assert main(["table", "--results", str(table_file)]) == 0
    printed = capsys.readouterr().out
    assert f"{row['accuracy']:.2f} / {row['tpr']:.2f}" in printed and "(98.53 / 62.36)" in printed
    (tmp_path / "bad.json").write_text("{}")
    assert main(["table", "--results", str(tmp_path / "bad.json")]) == 2


def test_train_overwrite_leaves_nothing_of_the_earlier_run(tmp_path, monkeypatch, capsys):
    """A second `pan train` in the same --out is refused (nothing touched); with --overwrite every file of the
    earlier run goes, its evaluation too, so `pan table` cannot show a stale result; files pan never writes stay."""
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "runs" / "san"
    argv = ["train", "--model", "san", "--num-train", "40", "--num-val", "20", "--batch-size", "20", "--epochs", "1",
            "--device", "cpu", "--backend", "torch", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--num-examples", "20", "--device", "cpu"]) == 0
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--overwrite" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    assert (out / "eval_mref_test.json").is_file()
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "eval_mref_test.json").exists() and (out / "notes.txt").read_text() == "mine"
    assert (out / "best.pt").is_file() and (out / "summary.json").is_file()
    capsys.readouterr()
    assert main(["table", "--results", str(tmp_path / "runs")]) == 0
    assert "0 of our results" in capsys.readouterr().out


def test_table_names_the_evaluation_it_shows_among_several(tmp_path, capsys):
    import os
    import time

    paths = {}
    for name, acc, age in (("old", 0.5, 100), ("new", 0.6, 0)):
        path = tmp_path / name / "eval_mref_test.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"model": "san", "dataset": "mref", "split": "test", "accuracy": acc, "tpr": 0.2}))
        os.utime(path, (time.time() - age, time.time() - age))
        paths[name] = path
    assert main(["table", "--results", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    (row,) = [line for line in printed.splitlines() if line.startswith("| SAN")]
    assert "60.00 / 20.00" in row and "50.00" not in row
    (note,) = [line for line in printed.splitlines() if line.startswith("san/mref")]
    assert "2 evaluations" in note and f"shown {paths['new']} (the test split, newest)" in note
    assert str(paths["old"]) in note and "50.00 / 20.00" in note
    (tmp_path / "old" / "eval_broken.json").write_text("{not json")
    assert main(["table", "--results", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "eval_broken.json" in captured.err and len(captured.err.strip().splitlines()) == 1
