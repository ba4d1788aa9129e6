"""torch.compile(fullgraph=True) of a small PAN block: no graph break, and compiled numerics equal eager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pan_kernels
from tests.helpers import fp32_pair_tol


class TinyPAN(nn.Module):
    """conv -> gated attention with context -> scores -> hard, soft or multi-label head: every op of the library."""

    def __init__(self, backend: str, head: str):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gate = pan_kernels.ProgressiveAttention(8, 16, num_queries=4, context=1, backend=backend)
        self.scores = pan_kernels.ProgressiveAttention(8, 16, num_queries=4, gate="none", backend=backend)
        head_cls = {"hard": pan_kernels.HardAttentionHead, "soft": pan_kernels.SoftAttentionHead,
                    "multilabel": pan_kernels.MultiLabelAttentionHead}[head]
        self.head = head_cls(8, 5, backend=backend)

    def forward(self, image, query):
        f = torch.relu(self.conv(image))
        f, alpha1 = self.gate(f, query)
        f, s = self.scores(f, query)
        *log_ps, alpha2 = self.head(f, s)
        return log_ps[0], alpha1, alpha2, *log_ps[1:]  # the multi-label head adds log(1 - p)


@pytest.mark.parametrize("head", ["hard", "soft", "multilabel"])
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_compile_fullgraph_matches_eager(backend, head, device):
    torch._dynamo.reset()
    model = TinyPAN(backend, head).to(device)
    image, query = torch.randn(3, 3, 9, 8, device=device), torch.randint(0, 4, (3,), device=device)
    compiled = torch.compile(model, fullgraph=True)
    outs_eager = model(image, query)
    loss_eager = -outs_eager[0][:, 0].mean() + outs_eager[1].square().mean() - outs_eager[-1][:, 1].mean()
    grads_eager = torch.autograd.grad(loss_eager, list(model.parameters()))
    outs = compiled(image, query)
    loss = -outs[0][:, 0].mean() + outs[1].square().mean() - outs[-1][:, 1].mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for a, b in zip(outs, outs_eager):
        torch.testing.assert_close(a, b, **fp32_pair_tol(device))
    for a, b in zip(grads, grads_eager):
        torch.testing.assert_close(a, b, **fp32_pair_tol(device))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_compile_reduce_overhead_cuda_graphs_match_eager():
    """mode="reduce-overhead" replays CUDA graphs: a kernel on the wrong stream or a host sync would show here."""
    torch._dynamo.reset()
    model = TinyPAN("triton", "hard").cuda()
    image, query = torch.randn(4, 3, 11, 10, device="cuda"), torch.randint(0, 4, (4,), device="cuda")
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    expected = model(image, query)
    for _ in range(3):  # warm-up, record, replay
        got = compiled(image, query)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **fp32_pair_tol("cuda"))
