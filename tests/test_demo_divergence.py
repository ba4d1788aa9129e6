"""`pan demo` whose training diverges: one line on stderr naming where and what to try, exit 1, no traceback, and no
evaluation or figure of non-finite weights."""

from pan.cli.main import main
from pan.train import recipes


def test_diverging_demo_is_one_line_and_writes_no_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    tiny = {**recipes.RECIPES["demo"], "num_train": 64, "num_val": 20, "max_epochs": 1, "batch_size": 32,
            "gate_sparsity_start": 0, "lr": 1e10, "clip_norm": None}
    monkeypatch.setitem(recipes.RECIPES, "demo", tiny)
    monkeypatch.setattr("pan.cli.demo.PRESETS", {"cpu": ("demo", 20), "full": ("paper", 20)})
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--device", "cpu", "--backend", "torch", "--quiet", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pan demo: error: training diverged"), err
    assert "Traceback" not in err and "--lr" in lines[0]
    assert not (out / "attention.png").exists() and not (out / "demo.json").exists()
