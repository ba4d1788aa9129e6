"""`pan data generate` and `pan data preview`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pan.cli.main import main
from pan.data import PanDataset, make_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_generate_writes_npz_and_json(tmp_path):
    out = tmp_path / "out"
    argv = "data generate --dataset mdist --split test --num-examples 90 --seed 4 --no-cache --quiet".split()
    rc = main(argv + ["--out", str(out)])
    assert rc == 0
    ds = PanDataset.load(out / "mdist_test.npz")
    info = json.loads((out / "mdist_test.json").read_text())
    assert info["num_examples"] == 90 and info["seed"] == 4 and info["num_images"] == ds.num_images
    ref = make_dataset("mdist", "test", 90, seed=4, cache_dir=None)
    assert all(np.array_equal(a, b) for a, b in zip(ds.arrays().values(), ref.arrays().values(), strict=True))


def test_generate_fills_the_cache(tmp_path):
    argv = "data generate --dataset mref --split val --num-examples 40 --quiet".split()
    rc = main(argv + ["--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert rc == 0 and len(list((tmp_path / "c").glob("*.npz"))) == 1


def test_preview_png(tmp_path):
    out = tmp_path / "grid.png"
    rc = main("data preview --dataset mbg --num-images 6 --cols 3 --show-mask".split() + ["--out", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "generate", "--dataset", "nope", "--out", "x"],
        ["data", "generate", "--dataset", "mref", "--split", "train", "--num-examples", "0", "--out", "x"],
        ["data", "generate", "--dataset", "mref", "--split", "train", "--num-examples", "ten", "--out", "x"],
        ["data", "generate", "--dataset", "mref", "--num-examples", "10", "--out", "x"],  # with --split all
        ["data", "generate", "--dataset", "mref", "--split", "train", "--seed", "-3", "--out", "x"],
        ["data", "preview", "--dataset", "mref"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_missing_mnist_dir_exit_2(tmp_path, capsys):
    argv = "data generate --dataset mref --split train --num-examples 10 --no-cache".split()
    rc = main(argv + ["--mnist-dir", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_no_action_exit_2(capsys):
    assert main(["data"]) == 2


def test_python_dash_m(tmp_path):
    env = {**os.environ, "PAN_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "pan", *"data generate --dataset mref --split train --num-examples 30 --quiet".split()]
        + ["--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "mref_train.npz").is_file()
