"""Bad inputs raise ValueError/TypeError naming the argument, before any kernel runs; backends fail clearly."""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from pan_kernels import functional
from tests.helpers import head_inputs, mlp_inputs


@pytest.fixture(autouse=True)
def no_kernels(monkeypatch):
    """Any attempt to reach a compiled operator fails loudly: validation must come first."""
    def boom(*args, **kwargs):
        raise AssertionError("a kernel was reached before validation")

    monkeypatch.setattr(functional, "get_op", boom)


def _mlp(**overrides):
    names = ("x", "query_bias", "weight1", "bias1", "weight2", "bias2")
    args = dict(zip(names, mlp_inputs(2, 3, 5, 4, 6, 3, dtype=torch.float32)))
    args.update(overrides)
    return args


MLP_BAD = [
    ("x", lambda a: a["x"][0], ValueError, "x must have shape"),
    ("x", lambda a: a["x"].to(torch.int64), TypeError, "x must be float16"),
    ("x", lambda a: a["x"].numpy(), TypeError, "x must be a torch.Tensor"),
    ("x", lambda a: a["x"][:, :, :0], ValueError, "x must have shape"),
    ("query_bias", lambda a: a["query_bias"][:1], ValueError, "query_bias must have shape"),
    ("query_bias", lambda a: a["query_bias"].double(), TypeError, "query_bias must have the dtype of x"),
    ("weight1", lambda a: a["weight1"][:, :2], ValueError, "weight1 must have shape"),
    ("weight1", lambda a: torch.randn(6, 3, 2, 2), ValueError, "odd kernel size"),
    ("weight1", lambda a: torch.randn(6, 3, 9, 9), ValueError, "odd kernel size"),
    ("weight1", lambda a: torch.randn(6, 3, 3, 1), ValueError, "weight1 must have shape"),
    ("weight1", lambda a: a["weight1"].to("meta"), ValueError, "weight1 must be on the device of x"),
    ("bias1", lambda a: a["bias1"][:5], ValueError, "bias1 must have shape"),
    ("weight2", lambda a: a["weight2"][None], ValueError, "weight2 must have shape"),
    ("weight2", lambda a: a["weight2"][:3], ValueError, "weight2 must have shape"),
    ("bias2", lambda a: a["bias2"][None], ValueError, "bias2 must have shape"),
    ("bias2", lambda a: 0.5, TypeError, "bias2 must be a torch.Tensor"),
    # every argument's dtype and device is checked against x's (a check left out reaches the kernel or conv2d)
    ("weight1", lambda a: a["weight1"].double(), TypeError, "weight1 must have the dtype of x"),
    ("bias1", lambda a: a["bias1"].double(), TypeError, "bias1 must have the dtype of x"),
    ("weight2", lambda a: a["weight2"].half(), TypeError, "weight2 must have the dtype of x"),
    ("bias2", lambda a: a["bias2"].double(), TypeError, "bias2 must have the dtype of x"),
    ("query_bias", lambda a: a["query_bias"].to("meta"), ValueError, "query_bias must be on the device of x"),
    ("bias1", lambda a: a["bias1"].to("meta"), ValueError, "bias1 must be on the device of x"),
    ("weight2", lambda a: a["weight2"].to("meta"), ValueError, "weight2 must be on the device of x"),
    ("bias2", lambda a: a["bias2"].to("meta"), ValueError, "bias2 must be on the device of x"),
    ("bias1", lambda a: a["bias1"][None], ValueError, "bias1 must have shape"),
    ("query_bias", lambda a: a["query_bias"][:, :5], ValueError, "query_bias must have shape"),
]


@pytest.mark.parametrize("op", ["progressive_attention", "attention_scores"])
@pytest.mark.parametrize("arg,make_bad,error,message", MLP_BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(MLP_BAD)])
@pytest.mark.parametrize("backend", ["torch", "triton", "auto"])
def test_attention_mlp_bad_inputs(op, arg, make_bad, error, message, backend):
    args = _mlp()
    args[arg] = make_bad(args)
    with pytest.raises(error, match=message):
        getattr(pan_kernels, op)(**args, backend=backend)


def _head(**overrides):
    args = dict(zip(("x", "scores", "cls_weight", "cls_bias"), head_inputs(2, 3, 5, 4, 6, dtype=torch.float32)))
    args.update(overrides)
    return args


HEAD_BAD = [
    ("scores", lambda a: a["scores"][:, :4], ValueError, "scores must have shape"),
    ("scores", lambda a: a["scores"][None], ValueError, "scores must have shape"),
    ("scores", lambda a: a["scores"].half(), TypeError, "scores must have the dtype of x"),
    ("cls_weight", lambda a: a["cls_weight"][:, :2], ValueError, "cls_weight must have shape"),
    ("cls_weight", lambda a: a["cls_weight"][0], ValueError, "cls_weight must have shape"),
    ("cls_bias", lambda a: a["cls_bias"][:2], ValueError, "cls_bias must have shape"),
    ("x", lambda a: a["x"][None], ValueError, "x must have shape"),
    ("scores", lambda a: a["scores"].to("meta"), ValueError, "scores must be on the device of x"),
    ("cls_weight", lambda a: a["cls_weight"].double(), TypeError, "cls_weight must have the dtype of x"),
    ("cls_weight", lambda a: a["cls_weight"].to("meta"), ValueError, "cls_weight must be on the device of x"),
    ("cls_bias", lambda a: a["cls_bias"].double(), TypeError, "cls_bias must have the dtype of x"),
    ("cls_bias", lambda a: a["cls_bias"].to("meta"), ValueError, "cls_bias must be on the device of x"),
    ("cls_bias", lambda a: a["cls_bias"][None], ValueError, "cls_bias must have shape"),
    ("cls_weight", lambda a: a["cls_weight"][:0], ValueError, "cls_weight must have shape"),
]


@pytest.mark.parametrize("arg,make_bad,error,message", HEAD_BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(HEAD_BAD)])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_head_bad_inputs(arg, make_bad, error, message, backend):
    args = _head()
    args[arg] = make_bad(args)
    with pytest.raises(error, match=message):
        pan_kernels.hard_attention_marginal(**args, backend=backend)
    with pytest.raises(error, match=message):
        pan_kernels.hard_attention_marginal_multilabel(**args, backend=backend)
    if arg in ("scores", "x"):
        with pytest.raises(error, match=message):
            pan_kernels.soft_attention_pool(args["x"], args["scores"], backend=backend)


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="backend must be one of"):
        pan_kernels.attention_scores(**_mlp(), backend="cudnn")


def test_compiled_backends_refuse_float64():
    with pytest.raises(TypeError, match="float64 runs on backend='torch'"):
        pan_kernels.attention_scores(**_mlp(**{k: v.double() for k, v in _mlp().items()}), backend="triton")


@pytest.mark.skipif(pan_kernels.has_cuda_extension() and torch.cuda.is_available(), reason="CUDA backend available")
def test_unavailable_cuda_backend_says_how_to_get_it():
    with pytest.raises(RuntimeError, match="backend='cuda' is unavailable"):
        pan_kernels.attention_scores(**_mlp(), backend="cuda")


def test_triton_on_cpu_without_interpreter_explains(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        pan_kernels.attention_scores(**_mlp(), backend="triton")


def test_auto_on_cpu_runs_the_reference(monkeypatch):
    """backend="auto" on CPU tensors is the eager reference itself: the same values, bit for bit, for every op."""
    from pan_kernels import reference

    monkeypatch.undo()  # this one must reach a real implementation
    mlp, head = _mlp(), _head()
    calls = [
        ("attention_scores", mlp), ("progressive_attention", mlp), ("hard_attention_marginal", head),
        ("hard_attention_marginal_multilabel", head), ("soft_attention_pool", {k: head[k] for k in ("x", "scores")}),
    ]
    for op, args in calls:
        got = getattr(pan_kernels, op)(**args, backend="auto")
        want = getattr(reference, op + "_ref")(*args.values())
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        assert len(got) == len(want), op
        for g, w in zip(got, want):
            assert torch.equal(g, w), op


def test_module_constructor_validation():
    with pytest.raises(ValueError, match="context must be in 0..3"):
        pan_kernels.ProgressiveAttention(3, 8, 10, context=4)
    with pytest.raises(ValueError, match="gate must be one of"):
        pan_kernels.ProgressiveAttention(3, 8, 10, gate="softmax")
    with pytest.raises(ValueError, match="hidden must be an int"):
        pan_kernels.ProgressiveAttention(3, 0, 10)
    with pytest.raises(ValueError, match="num_classes must be an int"):
        pan_kernels.HardAttentionHead(3, 0)

