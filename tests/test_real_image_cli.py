"""`pan train / eval --dataset vg|voc07 --data-dir DIR` end to end on tiny fixture folders: the VGG-16 PAN trains two
epochs on the CPU, resumes exactly, evaluates weighted mAP and TPR on Visual Genome and TPR on VOC 2007; bad
--data-dir and missing options give clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from pan.cli.main import main
from tests.engine_helpers import vg_objects
from tests.real_image_fixtures import voc_masks, write_vg, write_voc


def _objects(n_images=12, seed=0):
    return vg_objects(n_images, seed)


def _train(data, out, *extra):
    return main(["train", "--dataset", "vg", "--data-dir", str(data), "--model", "pan-h-ctx", "--batch-size", "4",
                 "--image-size", "32", "--min-count", "1", "--workers", "0", "--backend", "torch", "--device", "cpu",
                 "--out", str(out), "--quiet", *extra])


def test_vg_train_resume_and_eval(tmp_path, capsys):
    data = write_vg(tmp_path / "vg", _objects(), size=(32, 32))
    assert _train(data, tmp_path / "full", "--epochs", "2") == 0
    lines = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert all(0 <= x["val_weighted_map"] <= 1 and 0 <= x["val_tpr"] <= 1 for x in lines)
    assert 0 < lines[1]["train_loss"] < lines[0]["train_loss"], "the training NLL does not fall"
    assert lines[1]["lr"] == pytest.approx(1e-4 * 0.9)
    # one epoch, then resume to two: the same weights as two epochs in one go
    assert _train(data, tmp_path / "split", "--epochs", "1") == 0
    assert _train(data, tmp_path / "split", "--epochs", "2", "--resume") == 0
    capsys.readouterr()
    assert _train(data, tmp_path / "split", "--epochs", "2") == 2  # a finished run is never silently restarted
    assert "already holds a run" in capsys.readouterr().err
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert full["state"]["epoch"] == split["state"]["epoch"] == 2
    assert full["model"].keys() == split["model"].keys()
    assert all(torch.equal(full["model"][k], split["model"][k]) for k in full["model"])
    capsys.readouterr()

    assert main(["eval", "--dataset", "vg", "--data-dir", str(data), "--checkpoint",
                 str(tmp_path / "full" / "best.pt"), "--device", "cpu", "--backend", "torch"]) == 0
    printed = capsys.readouterr().out
    assert "weighted mAP" in printed and "TPR" in printed
    result = json.loads((tmp_path / "full" / "eval_vg_test.json").read_text())
    assert 0 <= result["weighted_map"] <= 1 and result["count"] > 0

    voc = write_voc(tmp_path / "voc", voc_masks())
    assert main(["eval", "--dataset", "voc07", "--split", "val", "--data-dir", str(voc), "--checkpoint",
                 str(tmp_path / "full" / "best.pt"), "--device", "cpu", "--backend", "torch"]) == 0
    voc_result = json.loads((tmp_path / "full" / "eval_voc07_val.json").read_text())
    assert voc_result["count"] == 2 and 0 <= voc_result["tpr"] <= 1  # person and dog are query classes here
    assert "tvmonitor" in voc_result["unmatched_classes"] and "dog" not in voc_result["unmatched_classes"]

    capsys.readouterr()
    assert main(["table", "--results", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Table 2" in printed
    vg_row = next(line for line in printed.splitlines() if line.startswith("| pan-h-ctx | w/o |"))
    cells = [c.strip() for c in vg_row.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(100 * result["weighted_map"], abs=0.01)
    assert float(cells[4]) == pytest.approx(100 * voc_result["tpr"], abs=0.01)

    for dataset, data_dir, split in (("vg", data, "test"), ("voc07", voc, "val")):
        png = tmp_path / f"{dataset}.png"
        assert main(["figure", "--dataset", dataset, "--data-dir", str(data_dir), "--split", split, "--checkpoint",
                     str(tmp_path / "full" / "best.pt"), "--device", "cpu", "--backend", "torch",
                     "--out", str(png)]) == 0
        assert png.stat().st_size > 10_000


def test_bad_data_dir_and_missing_options(tmp_path, capsys):
    assert _train(tmp_path / "nowhere", tmp_path / "run") == 2
    assert "nowhere: no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _train(tmp_path / "empty", tmp_path / "run") == 2
    assert "image_data.json: missing" in capsys.readouterr().err
    assert main(["train", "--dataset", "vg"]) == 2
    assert "needs --data-dir" in capsys.readouterr().err
    data = write_vg(tmp_path / "vg", _objects(4), size=(32, 32))
    assert main(["train", "--dataset", "voc07", "--data-dir", str(data)]) == 2
    assert "voc07 has no attribute labels" in capsys.readouterr().err
    assert main(["eval", "--dataset", "vg", "--data-dir", str(data)]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"no")
    assert main(["eval", "--dataset", "vg", "--data-dir", str(data), "--checkpoint", str(garbage)]) == 2
    assert "garbage.pt" in capsys.readouterr().err
