"""Helpers of the engine tests (no tests here): a tiny multi-label model that stands in for VGG-16 on Visual Genome
(seconds, not minutes, on a CPU), a tiny Visual Genome folder, subprocess launching, and comparison helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pan.models.attach import MultiLabelOutput
from tests.real_image_fixtures import write_vg

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["cat", "dog", "person"]
ATTRS = ["black", "white", "small"]


class TinyMultiLabel(nn.Module):
    """conv (the "backbone") -> query-weighted softmax attention over its cells -> linear head of attribute logits;
    no batch-norm. Output as build_vgg_pan's: MultiLabelOutput(log p, log(1 - p), (attention [B, h, w],))."""

    def __init__(self, num_queries: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.embed = nn.Embedding(num_queries, 4)
        self.head = nn.Linear(4, num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.conv.parameters())

    def forward(self, images: torch.Tensor, query: torch.Tensor) -> MultiLabelOutput:
        f = torch.relu(self.conv(images))
        b, _, h, w = f.shape
        a = torch.softmax((f * self.embed(query)[:, :, None, None]).sum(1).flatten(1), -1).view(b, h, w)
        logits = self.head((f * a[:, None]).sum((2, 3)))
        return MultiLabelOutput(F.logsigmoid(logits), F.logsigmoid(-logits), (a,))


def tiny_real_model(cfg, num_queries: int, num_classes: int, *, with_weights: bool = True) -> TinyMultiLabel:
    """A drop-in for pan.train.real_images.build_real_model."""
    return TinyMultiLabel(num_queries, num_classes)


def vg_objects(n_images: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    objects = {}
    for i in range(1, n_images + 1):
        objs = []
        for _ in range(2):
            attrs = [a for a in ATTRS if rng.random() < 0.5] or ["black"]
            x, y = rng.integers(0, 16, 2)
            objs.append((NAMES[rng.integers(0, 3)], attrs, (int(x), int(y), 12, 12)))
        objects[i] = objs
    return objects


def write_tiny_vg(root: Path) -> Path:
    return write_vg(root, vg_objects(), size=(32, 32))


def real_config(data: Path, out: Path, **overrides):
    from pan.train.real_images import RealImageConfig

    settings = dict(data_dir=str(data), out=str(out), batch_size=4, epochs=2, image_size=32, min_count=1,
                    num_workers=0, backend="torch", device="cpu", amp=False)
    return RealImageConfig(**{**settings, **overrides})


def run_script(code: str, args: list[str], cwd: Path, *, timeout: float = 240,
               torchrun: bool = False) -> subprocess.CompletedProcess:
    """Run ``code`` (a Python script) in a fresh interpreter, or under torchrun with 2 CPU processes; the whole
    process group is killed on a timeout."""
    script = cwd / "engine_child.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun
                else [sys.executable])
    proc = subprocess.Popen([*launcher, str(script), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail("child timed out:\n" + out[-5000:])
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, None)


def same_weights(a: dict, b: dict) -> bool:
    """Bitwise-equal state dicts."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def same_optimizer(a: dict, b: dict) -> bool:
    return a["state"].keys() == b["state"].keys() and all(
        torch.equal(a["state"][k][n], t) for k, v in b["state"].items() for n, t in v.items())
