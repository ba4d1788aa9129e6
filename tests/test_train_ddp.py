"""DistributedDataParallel under torchrun: 2 CPU processes with the gloo backend train a tiny PAN; the ranks end with
identical weights, rank 0 alone writes the log and checkpoints, and an interrupted run resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pan.train import load_checkpoint, param_digest
from tests.test_train_support import metrics_lines, single_thread, synthetic_dataset  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, os, sys
import torch
import torch.distributed as dist
from pan.train import TrainConfig, train

torch.set_num_threads(1)
root, train_file, val_file = sys.argv[1], sys.argv[2], sys.argv[3]
rank = int(os.environ["RANK"])
for i, (name, overrides) in enumerate(json.loads(sys.argv[4])):
    out_dir = os.path.join(root, name)
    config = TrainConfig(model="pan-h-ctx", backend="torch", device="cpu", num_train=80, num_val=30, batch_size=20,
                         max_epochs=2, quiet=True, out_dir=out_dir, train_file=train_file, val_file=val_file,
                         **overrides)
    summary = train(config)
    if summary["stopped"] == "interrupted":
        summary["accum_shape"] = list(torch.load(os.path.join(out_dir, "last.pt"))["accum"].shape)
    with open(os.path.join(root, f"{name}.{i}.rank{rank}.json"), "w") as f:
        json.dump(summary, f)
assert dist.is_initialized()  # train() created the process group; it lives until exit
"""


def torchrun(tmp_path: Path, runs: list[tuple[str, dict]]) -> list[list[dict]]:
    """Launch 2 CPU processes that do the given runs one after the other; the summaries of each run, by rank."""
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path), str(tmp_path / "train.npz"), str(tmp_path / "val.npz"), json.dumps(runs)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        output, _ = proc.communicate()
        pytest.fail("torchrun timed out:\n" + output[-5000:])
    assert proc.returncode == 0, output[-5000:]
    return [[json.loads((tmp_path / f"{name}.{i}.rank{r}.json").read_text()) for r in range(2)]
            for i, (name, _) in enumerate(runs)]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp")
    synthetic_dataset(80, seed=0).save(path / "train.npz")
    synthetic_dataset(30, seed=1).save(path / "val.npz")
    return path


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_ddp_two_processes_gloo(data_files):
    tmp_path = data_files
    # The first train() call creates the process group, the next ones reuse it; "resumed" is interrupted after 6 of
    # 8 steps, then resumed.
    runs = [("straight", {}), ("resumed", {"stop_after_steps": 6}), ("resumed", {"resume": True})]
    (r0, r1), first, second = torchrun(tmp_path, runs)
    out = tmp_path / "straight"
    assert (r0["world_size"], r0["rank"], r1["rank"]) == (2, 0, 1)
    assert r0["param_digest"] == r1["param_digest"]  # DDP kept the ranks' weights identical
    for key in ("best_val_acc", "best_epoch", "epochs", "steps", "stopped"):
        assert r0[key] == r1[key], key  # and their decisions
    assert r0["stopped"] == "max_epochs" and r0["steps"] == 2 * 4  # 80 examples / global batch 20, 2 epochs
    metrics = metrics_lines(out / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(0 <= m["val_acc"] <= 1 and m["train_loss"] > 0 for m in metrics)
    assert (out / "summary.json").is_file()
    # The rank-0 checkpoint holds the weights both ranks ended with.
    from pan.models import build_model

    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2
    model = build_model("pan-h-ctx", backend="torch")
    model.load_state_dict(ckpt["model"])
    assert param_digest(model) == r0["param_digest"]

    # The interrupted run saved both ranks' running sums; resumed, it ends exactly like the straight run.
    assert first[0]["stopped"] == first[1]["stopped"] == "interrupted" and first[0]["steps"] == 6
    assert first[0]["accum_shape"] == [2, 4]
    assert second[0]["param_digest"] == second[1]["param_digest"] == r0["param_digest"]
    assert metrics_lines(tmp_path / "resumed" / "metrics.jsonl") == metrics
