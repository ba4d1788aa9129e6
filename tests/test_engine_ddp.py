"""What each torchrun process trains on: 2 CPU processes (gloo) record the example indices of every step they train,
for the MREF task and the Visual Genome task (tiny model); each step's two shards must be disjoint halves whose union
is that step's global batch of the epoch's permutation. The Visual Genome run (a model without batch-norm) must also
end where a 1-process run of the same global batches ends (up to fp32 rounding)."""

from __future__ import annotations

import json

import pytest
import torch

from pan.train import epoch_permutation, load_checkpoint
from tests.engine_helpers import real_config, run_script, tiny_real_model, write_tiny_vg
from tests.test_train_support import single_thread  # noqa: F401

BATCH = 10

CHILD = """
import json, os, sys
import torch
torch.set_num_threads(1)
import pan.train.real_images as real_images
from pan.train import TrainConfig, train
from pan.train.mref_task import MrefTask
from pan.train.real_task import RealImageTask
from tests.engine_helpers import real_config, tiny_real_model
from tests.test_train_support import synthetic_dataset

root, vg_dir = sys.argv[1], sys.argv[2]
rank = int(os.environ["RANK"])
record = []

def recording(batches):
    def wrapped(self, epoch, indices):
        def logged():
            for idx in indices:
                record.append([epoch, idx.tolist()])
                yield idx
        return batches(self, epoch, logged())
    return wrapped

MrefTask.batches = recording(MrefTask.batches)
RealImageTask.batches = recording(RealImageTask.batches)
real_images.build_real_model = tiny_real_model

def dump(name, summary):
    with open(os.path.join(root, f"{name}.rank{rank}.json"), "w") as f:
        json.dump({"summary": summary, "record": record}, f)
    record.clear()

dump("mref", train(TrainConfig(model="san", num_train=40, num_val=20, batch_size=10, max_epochs=2, backend="torch",
                               device="cpu", quiet=True, out_dir=os.path.join(root, "mref")),
                   train_data=synthetic_dataset(40, seed=0), val_data=synthetic_dataset(20, seed=1)))
dump("vg", real_images.train_real_images(real_config(vg_dir, os.path.join(root, "vg"), batch_size=4), progress=False))
"""


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    root = tmp_path_factory.mktemp("engine_ddp")
    vg = write_tiny_vg(root / "vg_data")
    proc = run_script(CHILD, [str(root), str(vg)], root, torchrun=True)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return root, vg


def _load(root, name):
    return [json.loads((root / f"{name}.rank{r}.json").read_text()) for r in range(2)]


def assert_shards(ranks: list[dict], num_examples: int, batch: int, steps_per_epoch: int, epochs: int) -> None:
    """Each step: rank 0 and rank 1 trained disjoint halves whose union is the global batch of the permutation."""
    records = [r["record"] for r in ranks]
    assert len(records[0]) == len(records[1]) == steps_per_epoch * epochs
    for k, ((e0, idx0), (e1, idx1)) in enumerate(zip(*records)):
        epoch, step = k // steps_per_epoch + 1, k % steps_per_epoch
        assert e0 == e1 == epoch
        expected = epoch_permutation(0, epoch, num_examples)[step * batch: (step + 1) * batch].tolist()
        assert len(idx0) == len(idx1) == batch // 2
        assert not set(idx0) & set(idx1), (epoch, step, idx0, idx1)  # no example trained twice in a step
        assert sorted(idx0 + idx1) == sorted(expected), (epoch, step)  # and none of the batch left out


def test_mref_ranks_train_disjoint_halves_of_each_batch(ddp_runs):
    root, _ = ddp_runs
    ranks = _load(root, "mref")
    s0, s1 = ranks[0]["summary"], ranks[1]["summary"]
    assert (s0["world_size"], s0["rank"], s1["rank"]) == (2, 0, 1)
    assert s0["param_digest"] == s1["param_digest"] and s0["steps"] == s1["steps"] == 8
    assert_shards(ranks, 40, BATCH, 4, 2)


def test_real_images_ranks_train_disjoint_halves_and_match_one_process(ddp_runs, tmp_path, monkeypatch):
    import pan.train.real_images as real_images

    root, vg = ddp_runs
    ranks = _load(root, "vg")
    s0, s1 = ranks[0]["summary"], ranks[1]["summary"]
    assert s0["world_size"] == 2 and s0["param_digest"] == s1["param_digest"] and s0["epochs_done"] == 2
    monkeypatch.setattr(real_images, "build_real_model", tiny_real_model)
    cfg = real_config(vg, tmp_path / "one", batch_size=4)
    num_examples = len(real_images.load_splits(cfg)[1][0])
    assert_shards(ranks, num_examples, 4, num_examples // 4, 2)
    lines = [json.loads(x) for x in (root / "vg" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]  # rank 0 alone writes the log
    # the same global batches in one process: the same weights up to the rounding of the gradient average
    one = real_images.train_real_images(cfg, progress=False)
    two_w = load_checkpoint(root / "vg" / "last.pt")["model"]
    one_w = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    for name, w in one_w.items():
        torch.testing.assert_close(two_w[name], w, rtol=1e-5, atol=1e-7, msg=name)
    assert one["steps"] == s0["steps"]
