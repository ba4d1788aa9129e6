"""The eager reference: float64 gradcheck of every op, and the math checked against explicit loops."""

from __future__ import annotations

import pytest
import torch

from pan_kernels import reference
from tests.helpers import head_inputs, mlp_inputs


def _naive_scores(x, qb, w1, b1, w2, b2):
    """s[b,i,j] = sum_h w2[h] relu(sum_{c,u,v} w1[h,c,u,v] x[b,c,i+u-d,j+v-d] + qb[b,h] + b1[h]) + b2, by loops."""
    B, C, H, W = x.shape
    Hd, _, k, _ = w1.shape
    d = k // 2
    s = torch.zeros(B, H, W, dtype=x.dtype)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                pre = qb[b] + (b1 if b1 is not None else 0)
                for u in range(k):
                    for v in range(k):
                        if 0 <= i + u - d < H and 0 <= j + v - d < W:
                            pre = pre + w1[:, :, u, v] @ x[b, :, i + u - d, j + v - d]
                s[b, i, j] = torch.relu(pre) @ w2 + (b2 if b2 is not None else 0)
    return s


@pytest.mark.parametrize("k", [1, 3, 5])
def test_scores_match_explicit_loops(k):
    args = mlp_inputs(2, 3, 5, 4, 6, k)
    torch.testing.assert_close(reference.attention_scores_ref(*args), _naive_scores(*args))
    out, alpha = reference.progressive_attention_ref(*args)
    torch.testing.assert_close(alpha, torch.sigmoid(_naive_scores(*args)))
    torch.testing.assert_close(out, args[0] * alpha[:, None])


def test_marginal_matches_explicit_probabilities():
    x, s, wc, bc = head_inputs(2, 4, 3, 5, 7)
    log_p, alpha = reference.hard_attention_marginal_ref(x, s, wc, bc)
    a = torch.softmax(s.flatten(1), -1)
    p_cls = torch.softmax(torch.einsum("bcp,ac->bpa", x.flatten(2), wc) + bc, -1)
    torch.testing.assert_close(log_p.exp(), (a[:, :, None] * p_cls).sum(1))
    torch.testing.assert_close(torch.logsumexp(log_p, -1), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(alpha.flatten(1), a)


def test_soft_pool_matches_weighted_sum():
    x, s, _, _ = head_inputs(2, 4, 3, 5, 7)
    f, alpha = reference.soft_attention_pool_ref(x, s)
    a = torch.softmax(s.flatten(1), -1)
    torch.testing.assert_close(f, (x.flatten(2) * a[:, None]).sum(-1))
    torch.testing.assert_close(alpha, a.reshape(2, 3, 5))


def _req(args):
    return tuple(t.clone().requires_grad_() if t is not None else None for t in args)


@pytest.mark.parametrize("k,biases", [(1, True), (3, True), (3, False), (5, True)])
def test_gradcheck_mlp_ops(k, biases):
    args = _req(mlp_inputs(2, 3, 4, 3, 5, k, bias1=biases, bias2=biases))
    assert torch.autograd.gradcheck(reference.attention_scores_ref, args)
    assert torch.autograd.gradcheck(reference.progressive_attention_ref, args)


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_head_ops(bias):
    x, s, wc, bc = _req(head_inputs(2, 3, 3, 4, 5, bias=bias))
    assert torch.autograd.gradcheck(reference.hard_attention_marginal_ref, (x, s, wc, bc))
    assert torch.autograd.gradcheck(reference.soft_attention_pool_ref, (x, s))
