"""torch.library registration: opcheck on every Triton operator (forward and backward), schemas, public API."""

from __future__ import annotations

import inspect

import pytest
import torch

import pan_kernels
from pan_kernels.ops.registry import get_op
from pan_kernels.ops.schemas import PUBLIC_OPS, SCHEMAS
from tests.helpers import backward_args, opcheck_samples


@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_opcheck_forward(op, device):
    for args in opcheck_samples(op, device):
        torch.library.opcheck(get_op(op, "triton"), tuple(args))


@pytest.mark.parametrize("op", PUBLIC_OPS)
def test_opcheck_backward(op, device):
    for args in opcheck_samples(op, device):
        a = [None if t is None else t.detach() for t in args]
        outs = get_op(op, "triton")(*a)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.library.opcheck(get_op(op, "triton", backward=True), backward_args(op, a, outs))


@pytest.mark.parametrize("key", sorted(SCHEMAS))
def test_triton_schemas_match_the_single_source(key):
    op, _, suffix = key.partition("_backward")
    schema = str(get_op(op, "triton", backward=key.endswith("_backward"))._schema)
    args_and_returns = schema[schema.index("("):]
    assert args_and_returns.replace(" ", "") == SCHEMAS[key].replace(" ", "")


def test_public_api_is_locked():
    assert set(pan_kernels.__all__) == {
        "BACKENDS", "HardAttentionHead", "MultiLabelAttentionHead", "ProgressiveAttention", "SoftAttentionHead",
        "attention_scores", "hard_attention_marginal", "hard_attention_marginal_multilabel", "has_cuda_extension",
        "has_triton", "progressive_attention", "reference", "soft_attention_pool",
    }
    expected = {
        "progressive_attention": ["x", "query_bias", "weight1", "bias1", "weight2", "bias2", "backend"],
        "attention_scores": ["x", "query_bias", "weight1", "bias1", "weight2", "bias2", "backend"],
        "hard_attention_marginal": ["x", "scores", "cls_weight", "cls_bias", "backend"],
        "soft_attention_pool": ["x", "scores", "backend"],
        "hard_attention_marginal_multilabel": ["x", "scores", "cls_weight", "cls_bias", "backend"],
    }
    for name, params in expected.items():
        sig = inspect.signature(getattr(pan_kernels, name))
        assert list(sig.parameters) == params, name
        assert sig.parameters["backend"].kind is inspect.Parameter.KEYWORD_ONLY
        assert sig.parameters["backend"].default == "auto"
