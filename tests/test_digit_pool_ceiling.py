"""scripts/digit_pool_ceiling.py: class-balanced subsets of the train/val pool, the power-law fit, and a short run
that learns and writes its report (never over an existing file)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("digit_pool_ceiling", ROOT / "scripts" / "digit_pool_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_balanced_subset_takes_the_first_tenth_of_each_class():
    dpc = _script()
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(10), 7))
    idx = dpc.balanced_subset(labels, 50)
    assert np.bincount(labels[idx], minlength=10).tolist() == [5] * 10
    for c in range(10):
        assert idx[labels[idx] == c].tolist() == np.flatnonzero(labels == c)[:5].tolist()
    with pytest.raises(ValueError, match="multiple of 10"):
        dpc.balanced_subset(labels, 55)
    with pytest.raises(ValueError, match="class 0 has 7 digits"):
        dpc.balanced_subset(labels, 80)


def test_power_law_fit_recovers_its_parameters():
    dpc = _script()
    sizes = [250, 500, 1000, 4000]
    a, b = dpc.fit_power_law(sizes, [0.9 * n ** -0.42 for n in sizes])
    assert a == pytest.approx(0.9, rel=1e-9) and b == pytest.approx(0.42, rel=1e-9)


def test_a_short_run_learns_and_refuses_to_overwrite(tmp_path, capsys):
    dpc = _script()
    out = tmp_path / "ceiling.json"
    argv = ["--sizes", "100,400", "--seeds", "0", "--steps", "150", "--out", str(out)]
    assert dpc.main(argv) == 0
    report = json.loads(out.read_text())
    assert "--sizes 100,400" in report["header"]["command"] and report["header"]["git_sha"]
    assert report["test_digits"] == 1000 and [r["size"] for r in report["runs"]] == [100, 400]
    assert all(r["test_acc"] > 0.5 for r in report["runs"])  # chance is 10%
    assert set(report["fit"]["predicted_error"]) == {"100", "400", "60000"}
    before = out.read_bytes()
    with pytest.raises(SystemExit) as info:
        dpc.main(argv)
    assert info.value.code == 2 and "--out" in capsys.readouterr().err and out.read_bytes() == before
