"""Output files of the `pan` commands: no "wrote X" without X, no folder replaced by a file, the same file mode for
every kind of output (0666 less the umask), and the output-path rules of pan.cli.outputs."""

from __future__ import annotations

import os
import stat

import pytest

from pan.cli.main import main
from pan.cli.outputs import OutputError, check_file, check_run_dir, clear_run


@pytest.fixture
def fake_profiler(monkeypatch):
    """pan.bench.train.profile_training_step replaced: it writes the trace only when told to."""
    calls = []

    def profile(path, device, backend, batch, **kw):
        calls.append(path)
        if profile.write:
            with open(path, "w") as handle:
                handle.write("{}")
        return "profiled one step"

    profile.write = True
    monkeypatch.setattr("pan.bench.train.profile_training_step", profile)
    return profile, calls


def test_bench_profile_reports_only_a_trace_it_wrote(fake_profiler, tmp_path, capsys):
    profile, calls = fake_profiler
    trace = tmp_path / "new" / "t.json"
    assert main(["bench", "--profile", str(trace), "--profile-backend", "torch", "--device", "cpu"]) == 0
    assert trace.is_file() and f"wrote {trace}" in capsys.readouterr().out
    profile.write = False
    other = tmp_path / "u.json"
    assert main(["bench", "--profile", str(other), "--profile-backend", "torch", "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "wrote" not in captured.out and "wrote no trace" in captured.err and not other.exists()


@pytest.mark.parametrize("kind", ["missing-parent", "non-empty-dir", "empty-dir", "existing"])
def test_bench_profile_refusals_run_nothing_and_touch_nothing(fake_profiler, tmp_path, kind, capsys):
    _, calls = fake_profiler
    target = {"missing-parent": tmp_path / "f.txt" / "no" / "t.json", "non-empty-dir": tmp_path / "d",
              "empty-dir": tmp_path / "e", "existing": tmp_path / "t.json"}[kind]
    (tmp_path / "f.txt").write_text("mine")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_text("mine")
    (tmp_path / "e").mkdir()
    (tmp_path / "t.json").write_text("mine")
    assert main(["bench", "--profile", str(target), "--profile-backend", "torch", "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert calls == [] and "wrote" not in captured.out and "--profile" in captured.err
    assert (tmp_path / "e").is_dir() and (tmp_path / "d" / "keep").read_text() == "mine"
    assert (tmp_path / "t.json").read_text() == "mine"


def test_every_output_kind_gets_the_mode_open_gives(tmp_path):
    """.npz (pan data generate), .pt (checkpoints) and .json beside them: 0666 less the umask, whatever it is."""
    import torch

    from pan.train.checkpoint import atomic_torch_save

    old = os.umask(0o027)
    try:
        out = tmp_path / "data"
        argv = "data generate --dataset mref --split val --num-examples 10 --no-cache --quiet".split()
        assert main([*argv, "--out", str(out)]) == 0
        atomic_torch_save({"x": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (out / "mref_val.npz", out / "mref_val.json",
                                                              tmp_path / "c.pt")}
    assert set(modes.values()) == {0o640}, modes


def test_run_dir_rules(tmp_path):
    run = tmp_path / "run"
    assert check_run_dir(run) == run and run.is_dir()  # made when missing
    for name in ("config.json", "best.pt", "eval_mref_test.json", "attention.png", "demo.json"):
        (run / name).write_text("x")
    (run / "lr_0.001").mkdir()
    (run / "lr_0.001" / "last.pt").write_text("x")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="already holds a run"):
        check_run_dir(run)
    assert check_run_dir(run, overwrite=True) == run and check_run_dir(run, resume=True) == run
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputError, match="files pan did not write"):
        check_run_dir(run)
    with pytest.raises(OutputError, match="is a file"):
        check_run_dir(run / "notes.txt")


def test_file_rules_create_nothing(tmp_path):
    with pytest.raises(OutputError, match="is a directory"):
        check_file(tmp_path, "--out")
    with pytest.raises(OutputError, match="ending in .png"):
        check_file(tmp_path / "fig", "--out", suffix=".png")
    assert check_file(tmp_path / "a" / "b" / "fig.png", "--out", suffix=".png") == tmp_path / "a" / "b" / "fig.png"
    assert not (tmp_path / "a").exists()
