"""Loading a checkpoint, backbone weights or a dataset file from elsewhere never runs code: each loader is handed a
pickle whose ``__reduce__`` would create a marker file, must refuse it with its own clear error, and the marker must
never appear. A source scan keeps every ``torch.load`` / ``np.load`` in the package on the plain-data path."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from pan.cli.main import main
from pan.data import PanDataset
from pan.data import cache as data_cache
from pan.train import CheckpointError, ResumeError, TrainConfig, load_checkpoint, load_model, train
from tests.test_train_support import synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file exists iff the pickle ran code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_checkpoint(tmp_path: Path, marker: Path) -> Path:
    """A file that looks like a pan.train checkpoint (format 1, config, model) with a code-running object inside."""
    path = tmp_path / "evil.pt"
    config = TrainConfig(model="san", num_train=10, num_val=10, batch_size=5, device="cpu").to_dict()
    torch.save({"format": 1, "config": config, "model": {"w": torch.zeros(1)}, "state": _Payload(marker)}, path)
    return path


def _evil_npz(tmp_path: Path, marker: Path, name: str = "evil.npz") -> Path:
    """A PanDataset file whose ``query`` array is an object array holding a code-running pickle."""
    ds = synthetic_dataset(4, seed=0)
    arrays = {k: v for k, v in ds.arrays().items()}
    arrays["query"] = np.array([_Payload(marker)] * len(ds.query), dtype=object)
    path = tmp_path / name
    np.savez(path, **arrays, meta=np.array('{"name": "synthetic"}'))
    return path


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "loading the file ran code from its pickle"


def test_the_payload_really_runs_code_when_unpickled_unsafely(tmp_path, marker):
    """Guards the guard: an unsafe load of these very files does create the marker (then it is removed)."""
    torch.load(_evil_checkpoint(tmp_path, marker), weights_only=False)
    assert marker.exists()
    marker.unlink()
    with np.load(_evil_npz(tmp_path, marker), allow_pickle=True) as data:
        data["query"]
    assert marker.exists()
    marker.unlink()


def test_checkpoint_loaders_refuse_code(tmp_path, marker):
    path = _evil_checkpoint(tmp_path, marker)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_model(path, backend="torch")


def test_backbone_weights_refuse_code(tmp_path, marker):
    from torch import nn

    from pan.models.torchvision_pan import load_backbone_weights

    path = tmp_path / "vgg16.pth"
    torch.save({"features.0.weight": torch.zeros(1), "extra": _Payload(marker)}, path)
    with pytest.raises(ValueError, match="vgg16.pth: not a readable torch state dict"):
        load_backbone_weights(nn.Linear(1, 1), path)


def test_resume_refuses_a_code_carrying_last_checkpoint(tmp_path, marker):
    out = tmp_path / "run"
    out.mkdir()
    _evil_checkpoint(tmp_path, marker).rename(out / "last.pt")
    config = TrainConfig(model="san", num_train=10, num_val=10, batch_size=5, max_epochs=1, backend="torch",
                         device="cpu", quiet=True, out_dir=str(out), resume=True)
    with pytest.raises((CheckpointError, ResumeError), match="last.pt"):
        train(config, train_data=synthetic_dataset(10, seed=0), val_data=synthetic_dataset(10, seed=1))


@pytest.mark.parametrize("command", ["eval", "figure"])
def test_cli_refuses_a_code_carrying_checkpoint(tmp_path, marker, command, capsys):
    path = _evil_checkpoint(tmp_path, marker)
    argv = [command, "--checkpoint", str(path), "--device", "cpu", "--out", str(tmp_path / f"out-{command}")]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    printed = "".join(capsys.readouterr())
    assert "evil.pt" in printed and "Traceback" not in printed


def test_dataset_file_refuses_code(tmp_path, marker):
    with pytest.raises(ValueError, match="[Oo]bject arrays cannot be loaded"):
        PanDataset.load(_evil_npz(tmp_path, marker))


def test_dataset_cache_treats_a_code_carrying_file_as_damaged(tmp_path, marker):
    """A planted cache file under the exact name the cache would read: ignored (warning), removed, never unpickled."""
    params = {"name": "mref", "split": "train", "num_examples": 4, "seed": 0}
    path = data_cache.cache_path(tmp_path, params)
    _evil_npz(tmp_path, marker, name=path.name)
    with pytest.warns(UserWarning, match="damaged dataset cache"):
        assert data_cache.load(path, params) is None
    assert not path.exists()


def test_pickled_meta_in_a_dataset_file_is_refused(tmp_path, marker):
    """``meta`` stored as a pickled object instead of a JSON string: refused too."""
    path = tmp_path / "meta.npz"
    np.savez(path, **synthetic_dataset(4, seed=0).arrays(), meta=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match="[Oo]bject arrays cannot be loaded"):
        PanDataset.load(path)


def test_visual_genome_index_cache_refuses_code(tmp_path, marker):
    """A planted Visual Genome index cache whose arrays are pickled objects: ignored (warning), never unpickled."""
    from pan.data.vg_index import read_index

    path = tmp_path / "vg-index-planted.npz"
    payload = np.array([_Payload(marker)], dtype=object)
    np.savez(path, meta=payload, class_names=payload, attribute_names=payload, obj_image=payload)
    with pytest.warns(UserWarning, match="damaged Visual Genome index cache"):
        assert read_index(path, {"version": 1}) is None


def _loads(tree: ast.AST):
    """(module name, call) of every ``X.load(...)`` call whose receiver is a plain name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name):
            yield node.func.value.id, node


def test_every_load_in_the_package_is_plain_data_only():
    """Every torch.load passes weights_only=True and every np.load allow_pickle=False; nothing imports pickle,
    marshal, dill or joblib (pan/, pan_kernels/, scripts/)."""
    files = [p for d in ("pan", "pan_kernels", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    found = 0
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in {"pickle", "cPickle", "marshal", "dill", "joblib", "shelve"}, \
                    f"{where}:{node.lineno} imports {name}"
        for receiver, call in _loads(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            if receiver == "torch":
                flag = keywords.get("weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, \
                    f"{where}:{call.lineno}: torch.load without weights_only=True"
                found += 1
            elif receiver in ("np", "numpy"):
                flag = keywords.get("allow_pickle")
                assert isinstance(flag, ast.Constant) and flag.value is False, \
                    f"{where}:{call.lineno}: np.load without allow_pickle=False"
                found += 1
    assert found >= 3  # checkpoint, backbone weights, dataset file
