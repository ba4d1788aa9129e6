"""torch.library registration: opcheck on every Triton operator (forward and backward), schemas, public API."""

from __future__ import annotations

import inspect

import pytest
import torch

import pan_kernels
from pan_kernels.ops.registry import get_op
from pan_kernels.ops.schemas import PUBLIC_OPS, SCHEMAS
from tests.helpers import head_inputs, mlp_inputs


def _to(args, device, requires_grad=False, permute_x=False):
    out = []
    for i, t in enumerate(args):
        if t is None:
            out.append(None)
            continue
        t = t.to(device=device, dtype=torch.float32)
        if i == 0 and permute_x:
            t = t.contiguous(memory_format=torch.channels_last)
        out.append(t.detach().requires_grad_(requires_grad))
    return out


def _forward_samples(op, device):
    if op in ("progressive_attention", "attention_scores"):
        base = [mlp_inputs(2, 3, 5, 4, 16, 3), mlp_inputs(1, 5, 3, 3, 7, 1, bias1=False, bias2=False)]
    elif op == "hard_attention_marginal":
        base = [head_inputs(2, 3, 5, 4, 6), head_inputs(1, 4, 3, 3, 5, bias=False)]
    else:
        base = [head_inputs(2, 3, 5, 4, 6)[:2]]
    for args in base:
        for requires_grad in (False, True):
            for permute in (False, True):
                yield _to(args, device, requires_grad, permute)


def _backward_samples(op, device):
    for args in _forward_samples(op, device):
        args = [None if t is None else t.detach() for t in args]
        outs = get_op(op, "triton")(*args)
        outs = outs if isinstance(outs, tuple) else (outs,)
        grads = [torch.randn_like(o) for o in outs]
        if op == "progressive_attention":
            yield (grads[0], grads[1], *args[:5], outs[1])
        elif op == "attention_scores":
            yield (grads[0], *args[:5])
        elif op == "hard_attention_marginal":
            yield (grads[0], grads[1], args[0], args[2], args[3], outs[2])
        else:
            yield (grads[0], grads[1], args[0], outs[1])


@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_opcheck_forward(op, device):
    for args in _forward_samples(op, device):
        torch.library.opcheck(get_op(op, "triton"), tuple(args))


@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_opcheck_backward(op, device):
    for args in _backward_samples(op, device):
        torch.library.opcheck(get_op(op, "triton", backward=True), tuple(args))


@pytest.mark.parametrize("key", sorted(SCHEMAS))
def test_triton_schemas_match_the_single_source(key):
    op, _, suffix = key.partition("_backward")
    schema = str(get_op(op, "triton", backward=key.endswith("_backward"))._schema)
    args_and_returns = schema[schema.index("("):]
    assert args_and_returns.replace(" ", "") == SCHEMAS[key].replace(" ", "")


def test_public_api_is_locked():
    assert set(pan_kernels.__all__) == {
        "BACKENDS", "HardAttentionHead", "ProgressiveAttention", "SoftAttentionHead", "attention_scores",
        "hard_attention_marginal", "has_cuda_extension", "has_triton", "progressive_attention", "reference",
        "soft_attention_pool",
    }
    expected = {
        "progressive_attention": ["x", "query_bias", "weight1", "bias1", "weight2", "bias2", "backend"],
        "attention_scores": ["x", "query_bias", "weight1", "bias1", "weight2", "bias2", "backend"],
        "hard_attention_marginal": ["x", "scores", "cls_weight", "cls_bias", "backend"],
        "soft_attention_pool": ["x", "scores", "backend"],
    }
    for name, params in expected.items():
        sig = inspect.signature(getattr(pan_kernels, name))
        assert list(sig.parameters) == params, name
        assert sig.parameters["backend"].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters["backend"].default == "auto"
