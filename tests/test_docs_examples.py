"""The Python examples of docs/training.md run as written (an .npz split file; an AttachedPAN training loop that
learns its toy task)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_training_md_has_both_examples():
    blocks = _examples()
    assert len(blocks) == 2
    assert "PanDataset(" in blocks[0] and "AttachedPAN(" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["npz-file", "attached-pan-loop"])
def test_training_md_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = _examples()[index].replace("/tmp/my_train.npz", str(tmp_path / "my_train.npz"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace = {"__name__": "__doc_example__"}
        exec(compile(code, f"{DOC}:example {index}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    if index == 0:
        from pan.data.dataset import PanDataset

        assert PanDataset.load(tmp_path / "my_train.npz").meta["name"] == "mref"
    else:
        losses = [float(x) for x in re.findall(r"loss (\d+\.\d+)", printed)]
        assert len(losses) == 4 and losses[-1] < losses[0], printed
        assert namespace["result"]["weighted_map"] > 0.6, printed
