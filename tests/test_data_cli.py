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
    err = capsys.readouterr().err
    assert rc == 2 and f"--mnist-dir {tmp_path / 'missing'}: no such directory" in err


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


def test_generate_keeps_identical_splits_and_refuses_other_sizes(tmp_path, capsys):
    out = tmp_path / "out"
    argv = "data generate --dataset mref --split val --seed 1 --no-cache --quiet".split() + ["--out", str(out)]
    assert main([*argv, "--num-examples", "30"]) == 0
    first = (out / "mref_val.npz").read_bytes()
    assert main([*argv, "--num-examples", "30"]) == 0  # the same split: kept, not regenerated
    assert "kept" in capsys.readouterr().out
    assert main([*argv, "--num-examples", "45"]) == 2  # another size: refused, the file untouched
    err = capsys.readouterr().err
    assert "--out" in err and "30 examples" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "mref_val.npz").read_bytes() == first
    assert main([*argv, "--num-examples", "45", "--overwrite"]) == 0
    assert json.loads((out / "mref_val.json").read_text())["num_examples"] == 45
    assert PanDataset.load(out / "mref_val.npz").query.shape == (45,)


def test_generate_refuses_a_size_that_does_not_fit_in_memory(tmp_path, capsys):
    argv = "data generate --dataset mref --split train --num-examples 1000000000 --no-cache --quiet".split()
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--num-examples 1000000000" in err and "GiB" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_generate_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    argv = "data generate --dataset mref --split val --num-examples 10 --no-cache --quiet".split()
    assert main([*argv, "--out", str(tmp_path / "f")]) == 2
    assert "--out" in capsys.readouterr().err and (tmp_path / "f").read_text() == "mine"


def test_preview_refuses_a_directory_a_missing_suffix_and_an_existing_file(tmp_path, capsys):
    base = "data preview --dataset mref --num-images 2 --cols 2".split()
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err and not (tmp_path.with_suffix(".png")).exists()
    assert main([*base, "--out", str(tmp_path / "grid")]) == 2
    assert "ending in .png" in capsys.readouterr().err and not (tmp_path / "grid.png").exists()
    (tmp_path / "g.png").write_bytes(b"mine")
    assert main([*base, "--out", str(tmp_path / "g.png")]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "g.png").read_bytes() == b"mine"
    assert main([*base, "--out", str(tmp_path / "g.png"), "--overwrite"]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_generate_stops_at_once_and_leaves_nothing(tmp_path, how):
    """A large generate (two workers) stopped after ~3 s: it exits within seconds, with one line saying how to
    continue, no partial file, and no worker left behind."""
    import signal
    import time

    out = tmp_path / "out"
    argv = [sys.executable, "-m", "pan", *"data generate --dataset mref --split train --num-examples 20000".split(),
            "--workers", "2", "--no-cache", "--quiet", "--out", str(out)]
    # SIGINT as a terminal leaves it: a launcher without job control (`cmd &` in a script) hands its children SIGINT
    # ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(_group_members(proc.pid)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until both workers run: the generation (~3 s) has just begun
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    else:
        proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 8, "did not stop within seconds"
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and "run the same command again" in err
    assert len(err.strip().splitlines()) == 1, err
    assert list(out.iterdir()) == []
    deadline = time.monotonic() + 5
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(proc.pid) == []


def test_interrupt_while_writing_leaves_no_file(tmp_path, monkeypatch, capsys):
    """Ctrl-C that lands after the .npz is in place but before its .json: both go, one line says how to continue."""
    import pan.data.cache

    real = pan.data.cache.atomic_save

    def save_then_interrupt(path, dataset):
        real(path, dataset)
        raise KeyboardInterrupt

    monkeypatch.setattr(pan.data.cache, "atomic_save", save_then_interrupt)
    out = tmp_path / "out"
    argv = "data generate --dataset mref --split val --num-examples 10 --no-cache --quiet".split()
    assert main([*argv, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert list(out.iterdir()) == [] and "interrupted" in err and len(err.strip().splitlines()) == 1
