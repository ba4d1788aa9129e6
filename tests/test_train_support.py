"""Helpers of the training tests (no tests here): a tiny learnable PanDataset and a tiny PAN built from pan_kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import pan_kernels
from pan.data import COLOR_RGB, PanDataset
from pan.models import ModelOutput


def synthetic_dataset(n: int, seed: int, size: int = 100) -> PanDataset:
    """``n`` examples on ``ceil(n / 2)`` noise images; example ``i`` asks about a block whose position depends on the
    query and whose colour is the answer (two blocks per image, so the query matters)."""
    rng = np.random.default_rng(seed)
    n_img = (n + 1) // 2
    images = rng.integers(0, 40, size=(n_img, size, size, 3), dtype=np.uint8)
    instances = np.zeros((n_img, size, size), np.uint8)
    image_index = np.arange(n, dtype=np.int64) // 2
    query = np.empty(n, np.int64)
    for k in range(n_img):
        query[2 * k: 2 * k + 2] = rng.choice(10, size=2, replace=False)[: min(2, n - 2 * k)]
    answer = rng.integers(0, 5, size=n).astype(np.int64)
    step = size // 10
    for i in range(n):
        k, q = image_index[i], query[i]
        r, c = (q // 5) * (size // 2) + step, (q % 5) * (2 * step)
        images[k, r: r + 2 * step, c: c + step + 1] = COLOR_RGB[answer[i]]
        instances[k, r: r + 2 * step, c: c + step + 1] = i % 2 + 1
    target = (np.arange(n) % 2 + 1).astype(np.int64)
    ds = PanDataset(images=images, instances=instances, image_index=image_index, query=query, answer=answer,
                    target=target, scale=np.ones(n, np.float32), meta={"name": "synthetic", "seed": seed})
    if size == 100:
        ds.validate()
    return ds


class TinyPAN(nn.Module):
    """conv -> pool -> sigmoid attention with context -> batch-norm -> scores -> hard head, on small images."""

    def __init__(self, backend: str, channels: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.pool = nn.MaxPool2d(2)
        self.gate = pan_kernels.ProgressiveAttention(channels, 16, num_queries=10, context=1, backend=backend)
        self.norm = nn.BatchNorm2d(channels)
        self.scores = pan_kernels.ProgressiveAttention(channels, 16, num_queries=10, gate="none", backend=backend)
        self.head = pan_kernels.HardAttentionHead(channels, 5, backend=backend)

    def forward(self, images: torch.Tensor, query: torch.Tensor) -> ModelOutput:
        f = self.pool(torch.relu(self.conv(images)))
        f, a1 = self.gate(f, query)
        f, s = self.scores(self.norm(f), query)
        log_p, a2 = self.head(f, s)
        return ModelOutput(log_p, (a1, a2))


def metrics_lines(path) -> list[dict]:
    """metrics.jsonl as dicts, without the timing fields."""
    import json

    from pan.train import TIMING_FIELDS

    lines = [json.loads(line) for line in open(path).read().splitlines() if line.strip()]
    return [{k: v for k, v in line.items() if k not in TIMING_FIELDS} for line in lines]


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread: on a busy 2-core machine, several spinning OpenMP threads are 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
