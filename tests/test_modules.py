"""nn.Module wrappers: shapes, parameters, agreement with the functional ops, every backend."""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from tests.helpers import fp32_pair_tol


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_progressive_attention_module(backend, device):
    layer = pan_kernels.ProgressiveAttention(6, 16, num_queries=10, context=1, backend=backend).to(device)
    x, q = torch.randn(3, 6, 7, 5, device=device), torch.randint(0, 10, (3,), device=device)
    out, alpha = layer(x, q)
    assert out.shape == x.shape and alpha.shape == (3, 7, 5)
    assert layer.weight1.shape == (16, 6, 3, 3)
    ref_out, ref_alpha = pan_kernels.progressive_attention(
        x, layer.query_embedding(q), layer.weight1, layer.bias1, layer.weight2, layer.bias2, backend="torch")
    # the Triton kernels use TF32 on a GPU as cuDNN does, but round differently: the bound follows the precision
    torch.testing.assert_close(alpha, ref_alpha, **fp32_pair_tol(device))
    torch.testing.assert_close(out, ref_out, **fp32_pair_tol(device))
    (out.square().mean() + alpha.mean()).backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_scores_module_and_heads(backend, device):
    layer = pan_kernels.ProgressiveAttention(6, 16, num_queries=10, gate="none", backend=backend).to(device)
    x, q = torch.randn(2, 6, 4, 4, device=device), torch.randint(0, 10, (2,), device=device)
    same, s = layer(x, q)
    assert same is x and s.shape == (2, 4, 4)
    hard = pan_kernels.HardAttentionHead(6, 5, backend=backend).to(device)
    log_p, alpha = hard(x, s)
    torch.testing.assert_close(torch.logsumexp(log_p, -1), torch.zeros(2, device=device), atol=1e-5, rtol=0)
    torch.testing.assert_close(alpha.sum((1, 2)), torch.ones(2, device=device))
    soft = pan_kernels.SoftAttentionHead(6, 5, backend=backend).to(device)
    log_p, alpha = soft(x, s)
    assert log_p.shape == (2, 5)
    torch.testing.assert_close(torch.logsumexp(log_p, -1), torch.zeros(2, device=device), atol=1e-5, rtol=0)
