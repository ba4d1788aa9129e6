"""scripts/gate_regions.py: per-pixel means (not sums) of overlapping map locations, the right region values on a
known map, safe checkpoint loading and one-line errors."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pan.data import make_dataset
from pan.evaluation.metrics import batch_images
from pan.models.backbone import IMAGE_GEOMETRY, STAGE_GEOMETRY
from pan.models.outputs import ModelOutput
from pan.train import TrainConfig
from tests.tiny_runs import train_tiny_mref

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gate_regions", ROOT / "scripts" / "gate_regions.py")
gate_regions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gate_regions)


@pytest.mark.parametrize("geometry", STAGE_GEOMETRY, ids=lambda g: f"rf{g.rf}-s{g.stride}")
def test_constant_map_reads_as_its_value_where_locations_overlap(geometry):
    """Locations overlap (rf > stride): a pixel seen by 9 locations of a 0.25 map is 0.25, not 9 x 0.25."""
    side = {2: 49, 4: 23, 8: 10, 16: 4}[geometry.stride]
    pixel = gate_regions.location_mean_in_image(torch.full((2, side, side), 0.25), geometry)
    covered = pixel[~pixel.isnan()]
    assert covered.numel() > 0
    assert torch.allclose(covered, torch.tensor(0.25), atol=1e-6)


class _MaskModel(nn.Module):
    """One image-space attention map: the given masks, whatever the input."""

    attention_geometry = [IMAGE_GEOMETRY]

    def __init__(self, maps):
        super().__init__()
        self.maps = maps

    def forward(self, images, query):
        return ModelOutput(torch.zeros(len(query), 5), [self.maps[: len(query)]])


def test_region_means_on_a_map_that_is_the_target_mask(tmp_path):
    data = make_dataset("mref", "val", 6, seed=0, cache_dir=tmp_path)
    _, target = batch_images(data, np.arange(6), "cpu")
    rows = gate_regions.region_means(_MaskModel(target.float()), data, 6)
    assert rows == [{"target": 1.0, "other digits": 0.0, "background": 0.0}]


def test_cli_on_a_trained_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAN_CACHE_DIR", str(tmp_path / "cache"))
    run = train_tiny_mref(tmp_path, "pan-h-ctx", "run")
    assert gate_regions.main([run["checkpoint"], "--num-examples", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pan-h-ctx on 5 mref val examples")
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["layer 0", "layer 1", "layer 2", "layer 3"]
    values = [float(v) for line in lines[1:] for v in re.findall(r"(?:target|other digits|background) (\S+)", line)]
    assert len(values) == 12 and all(0.0 <= v <= 1.0 or math.isnan(v) for v in values)


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("argv, message", [
    (["{missing}"], "checkpoint: no checkpoint at"),
    (["{evil}"], "evil.pt"),
    (["{evil}", "--num-examples", "0"], "--num-examples must be a positive integer"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    config = TrainConfig(model="san", num_train=10, num_val=10, batch_size=5, device="cpu").to_dict()
    torch.save({"format": 1, "config": config, "model": {"w": torch.zeros(1)}, "state": _Payload(marker)}, evil)
    argv = [a.format(missing=tmp_path / "nope.pt", evil=evil) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        gate_regions.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not marker.exists(), "loading the checkpoint ran code from its pickle"
