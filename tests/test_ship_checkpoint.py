"""scripts/ship_checkpoint.py: the small file `pan demo --pretrained` reads, made from a run (a warm-started one
included): weights and config without the optimiser, the commands of every run behind it, and the training images
they add up to, which `pan demo --pretrained` reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from pan.cli.main import main as pan_main
from pan.data import make_dataset
from pan.train import TrainConfig, load_checkpoint, train
from tests.tiny_runs import train_tiny_mref

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ship():
    spec = importlib.util.spec_from_file_location("ship_checkpoint", ROOT / "scripts" / "ship_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def warm_run(tmp_path_factory):
    """A 1-epoch run from scratch (40 images), and a 2-epoch run warm-started from its last.pt (80 images)."""
    root = tmp_path_factory.mktemp("ship")
    first = train_tiny_mref(root, "pan-h-ctx", "first")
    cache = root / "cache"
    data = (make_dataset("mref", "train", 40, seed=0, cache_dir=cache),
            make_dataset("mref", "val", 20, seed=0, cache_dir=cache))
    config = TrainConfig(model="pan-h-ctx", num_train=40, num_val=20, batch_size=20, max_epochs=2, backend="torch",
                         device="cpu", quiet=True, init_from=first["last_checkpoint"], out_dir=str(root / "warm"))
    train(config, train_data=data[0], val_data=data[1])
    return root


def test_ship_keeps_the_weights_and_counts_the_images_of_the_whole_chain(ship, warm_run, tmp_path, monkeypatch,
                                                                          capsys):
    out = tmp_path / "shipped.pt"
    commands = ["pan train --model pan-h-ctx --out first", "pan train --model pan-h-ctx --init-from x --out warm"]
    source = warm_run / "warm" / "last.pt"
    assert ship([str(source), str(out), "--command", commands[0], "--command", commands[1]]) == 0
    shipped, run = load_checkpoint(out), load_checkpoint(source)
    assert shipped["optimizer"] is None and shipped["rng"] is None and out.stat().st_size < source.stat().st_size
    assert all(torch.equal(shipped["model"][k], v) for k, v in run["model"].items())
    provenance = shipped["provenance"]
    assert provenance["commands"] == commands and provenance["source"] == "last.pt"
    assert provenance["images_before_warm_start"] == 40 and provenance["images_trained"] == 120
    assert provenance["header"]["git_sha"] and provenance["summary"]["epochs"] == 2

    monkeypatch.setenv("PAN_CACHE_DIR", str(warm_run / "cache"))
    monkeypatch.setattr("pan.cli.demo.PRESETS", {"cpu": ("demo", 20), "full": ("paper", 20)})
    capsys.readouterr()
    demo = tmp_path / "demo"
    argv = ["demo", "--pretrained", str(out), "--out", str(demo), "--device", "cpu", "--backend", "torch"]
    assert pan_main(argv) == 0
    assert "after a warm start from 40 images, 120 training images" in capsys.readouterr().out
    assert json.loads((demo / "demo.json").read_text())["images_trained"] == 120
    # the run's own checkpoint (no provenance): the demo follows its warm start on disk, to the same count
    assert pan_main([*argv[:2], str(source), "--out", str(tmp_path / "own"), *argv[5:]]) == 0
    assert "after a warm start from 40 images, 120 training images" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("one command", "--command: given 1, but"),
    ("not pan train", "--command: each must be"),
    ("start missing", "its warm start"),
    ("out exists", "--overwrite"),
])
def test_ship_refuses_what_would_give_a_wrong_provenance(ship, warm_run, tmp_path, case, message, capsys):
    source = warm_run / "warm" / "last.pt"
    out = tmp_path / "shipped.pt"
    commands = ["pan train a", "pan train b"]
    if case == "one command":
        commands = commands[:1]
    elif case == "not pan train":
        commands[1] = "python train.py"
    elif case == "start missing":
        (tmp_path / "copy").mkdir()
        config = load_checkpoint(source)
        config["config"] = {**config["config"], "init_from": str(tmp_path / "gone.pt")}
        torch.save(config, tmp_path / "copy" / "last.pt")
        source = tmp_path / "copy" / "last.pt"
    elif case == "out exists":
        out.write_bytes(b"the user's file")
    argv = [str(source), str(out)] + [arg for c in commands for arg in ("--command", c)]
    assert ship(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or out.read_bytes() == b"the user's file"
