"""Shared test helpers: random inputs and shape tables for each op, per-element tolerances measured per dtype and
kind (MEASURED_ERROR), layouts, a verbose comparison, opcheck samples and the contract cases — one copy for the Triton
and the CUDA backend tests."""

from __future__ import annotations

import json
import os

import pytest
import torch

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

# B, C, H, W, Hd, k, biases, layout of x. Hd > 64 and C > 32 span several kernel tiles.
MLP_CASES = [
    pytest.param(2, 5, 7, 5, 19, 3, True, "contiguous", id="B2-C5-7x5-Hd19-k3"),
    pytest.param(1, 3, 1, 1, 17, 1, True, "contiguous", id="B1-C3-1x1-Hd17-k1"),
    pytest.param(2, 20, 6, 7, 33, 5, False, "channels_last", id="B2-C20-6x7-Hd33-k5-nobias-cl"),
    pytest.param(3, 4, 5, 4, 16, 3, True, "strided", id="B3-C4-5x4-Hd16-k3-strided"),
    pytest.param(1, 2, 4, 6, 5, 7, True, "contiguous", id="B1-C2-4x6-Hd5-k7"),
    pytest.param(2, 40, 8, 11, 70, 3, True, "channels_last", id="B2-C40-8x11-Hd70-k3-cl"),  # 88 px: 2 GPU tiles
    pytest.param(1, 33, 9, 11, 65, 7, False, "contiguous", id="B1-C33-9x11-Hd65-k7-nobias"),
    pytest.param(0, 4, 5, 5, 8, 3, True, "contiguous", id="B0"),
]

# B, C, H, W, A, bias, layout of x
HEAD_CASES = [
    pytest.param(2, 5, 7, 5, 19, True, "contiguous", id="B2-C5-7x5-A19"),
    pytest.param(1, 3, 1, 1, 5, True, "contiguous", id="B1-C3-1x1-A5"),
    pytest.param(2, 70, 6, 7, 3, False, "channels_last", id="B2-C70-6x7-A3-nobias-cl"),
    pytest.param(3, 4, 9, 8, 66, True, "strided", id="B3-C4-9x8-A66-strided"),
    pytest.param(2, 40, 14, 14, 130, True, "contiguous", id="B2-C40-14x14-A130"),
    pytest.param(0, 4, 5, 5, 8, True, "contiguous", id="B0"),
]


# Error of the correct kernels, measured per element against float64 on 2026-12-05 with PAN_TEST_RECORD_ERRORS (see
# assert_close) over every case of test_triton_ops.py, test_multilabel_marginal.py and test_modules.py (Triton
# interpreter, exact fp32) and test_cuda_extension.py (CUDA emulator, TF32 and exact fp32), including a former
# 2x40x13x17 MLP case that gave the largest bf16 errors. Entry (a, r): with the rtol r (near the precision's rounding
# unit) every element met |kernel - ref| <= a + r |ref|. Kinds: "output"; "data_grad", the gradient of x or scores;
# "param_grad", that of a weight, bias or query_bias: a sum over every pixel of the batch, whose error follows the
# size of the summed terms rather than of the (often cancelling) sum, hence the larger a (bf16: dW2 of the 13x17
# case, |ref| up to 56, off by 0.15). TF32 outputs measured at fp32 level (inputs are pre-rounded to TF32, see
# leaves(), and the second layer and softmaxes run in fp32), so they share the fp32 entry.
KINDS = ("output", "data_grad", "param_grad")
MEASURED_ERROR = {
    ("float32", "output"): (1.19e-6, 1e-6), ("float32", "data_grad"): (1.76e-6, 1e-6),
    ("float32", "param_grad"): (9.65e-6, 1e-6),
    ("tf32", "output"): (1.19e-6, 1e-6), ("tf32", "data_grad"): (1.48e-4, 1.78e-3),
    ("tf32", "param_grad"): (2.61e-3, 1.78e-3),
    ("bfloat16", "output"): (8.41e-3, 3.16e-3), ("bfloat16", "data_grad"): (1.52e-2, 3.16e-3),
    ("bfloat16", "param_grad"): (1.51e-1, 3.16e-3),
    ("float16", "output"): (2.56e-8, 1e-3), ("float16", "data_grad"): (4.61e-4, 1e-3),
    ("float16", "param_grad"): (1.33e-2, 1e-3),
}
# The bound is this many times the measured error: enough for another accumulation order (GPU tiles, atomics), while
# an error 5x the measured one (a kernel that rounds an intermediate to bf16 once too often) fails.
TOLERANCE_FACTOR = 3.0
DATA_ARGS = ("x", "scores")


def tolerance(dtype: torch.dtype, tf32: bool, kind: str = "output") -> tuple[float, float]:
    """(atol, rtol) of a kernel in `dtype` against float64, for assert_close: TOLERANCE_FACTOR x MEASURED_ERROR.
    fp32 under TF32 (10 mantissa bits, a GPU's default for fp32 dots) gets the TF32 entry, exact fp32 its own."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    precision = ("tf32" if tf32 else "float32") if dtype == torch.float32 else str(dtype).removeprefix("torch.")
    a, r = MEASURED_ERROR[(precision, kind)]
    return TOLERANCE_FACTOR * a, TOLERANCE_FACTOR * r


def grad_kind(arg_name: str) -> str:
    """The tolerance kind of the gradient of the argument called `arg_name`."""
    return "data_grad" if arg_name in DATA_ARGS else "param_grad"


ARG_NAMES = {
    "progressive_attention": ("x", "query_bias", "weight1", "bias1", "weight2", "bias2"),
    "attention_scores": ("x", "query_bias", "weight1", "bias1", "weight2", "bias2"),
    "hard_attention_marginal": ("x", "scores", "cls_weight", "cls_bias"),
    "hard_attention_marginal_multilabel": ("x", "scores", "cls_weight", "cls_bias"),
    "soft_attention_pool": ("x", "scores"),
}


def fp32_tf32_active(device) -> bool:
    """Whether fp32 kernels on `device` multiply on TF32 tensor cores (a GPU with cudnn.allow_tf32, the default);
    the Triton interpreter and the CPU compute exact fp32."""
    return torch.device(device).type == "cuda" and torch.backends.cudnn.allow_tf32


def fp32_pair_tol(device) -> dict:
    """atol/rtol for torch.testing.assert_close between two fp32 computations of the same op on `device` by
    different backends (or eager vs compiled): exact fp32 agrees to ~1e-6 relative, TF32 (10 mantissa bits) only to
    ~1e-3, so the bound follows the precision actually used."""
    return dict(atol=5e-3, rtol=5e-3) if fp32_tf32_active(device) else dict(atol=1e-4, rtol=1e-4)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: tuple[float, float], name: str) -> None:
    """Every element of `actual` (any dtype) within atol + rtol * |expected| of the float64 `expected` (torch.testing's
    rule, not a bound on the largest element): a small element cannot hide behind a large one. NaN fails.

    With PAN_TEST_RECORD_ERRORS=<file> set, the comparison is recorded instead of asserted: one JSON line per call
    with the atol each rtol of a grid would need (how MEASURED_ERROR was measured)."""
    atol, rtol = tol
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if e.numel() == 0:
        return
    diff = (a - e).abs()
    record = os.environ.get("PAN_TEST_RECORD_ERRORS")
    if record:
        _record_error(record, actual.dtype, tol, name, diff, e.abs())
        return
    bound = atol + rtol * e.abs()
    bad = ~(diff <= bound)  # NaN in actual (an unwritten element) counts as bad
    if bad.any():
        excess = torch.where(bad, diff.nan_to_num(float("inf")) / bound, torch.zeros_like(diff))
        worst = tuple(int(i) for i in torch.unravel_index(excess.argmax(), excess.shape))
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.numel()} elements off by more than atol {atol:.1e} + rtol {rtol:.1e} "
            f"* |ref|; worst at {worst}: got {a[worst].item():.6g}, want {e[worst].item():.6g} "
            f"(max |ref| {e.abs().max().item():.3g})"
        )


def _record_error(path: str, dtype: torch.dtype, tol, name: str, diff: torch.Tensor, ref_abs: torch.Tensor) -> None:
    """Append {dtype, tol, name, test, need}: need[i] = max(|d| - r_i |ref|) for r_i = 1e-9 ... 1 (quarter decades)."""
    d, r = diff.flatten(), ref_abs.flatten()
    grid = [10 ** (-9 + 0.25 * i) for i in range(37)]
    need = [(d - g * r).max().item() for g in grid]
    with open(path, "a") as fh:
        fh.write(json.dumps(dict(dtype=str(dtype), tol=list(tol), name=name, need=need,
                                 test=os.environ.get("PYTEST_CURRENT_TEST", ""))) + "\n")


def apply_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x as "contiguous", "channels_last", or "strided" (every other column of a wider NaN buffer: no dense layout)."""
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        wide = torch.full((*x.shape[:3], 2 * x.shape[3]), float("nan"), dtype=x.dtype, device=x.device)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


def round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 `t` rounded to TF32 (10 mantissa bits, to nearest): values a TF32 dot multiplies exactly."""
    bits = t.float().contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32).reshape(t.shape)


def leaves(args, dtype, device, tf32: bool = False):
    """Kernel-side copies in `dtype` (requires_grad) and float64 reference copies of the same rounded values.
    With `tf32` (fp32 kernels on TF32 tensor cores) the fp32 values are rounded to TF32 first, so the kernel's
    products are exact and the comparison measures its accumulation and roundings, not the input conversion."""
    low = [None if t is None else t.to(device=device, dtype=dtype) for t in args]
    if tf32 and dtype == torch.float32:
        low = [None if t is None else round_to_tf32(t) for t in low]
    ref = [None if t is None else t.detach().cpu().double().requires_grad_() for t in low]
    low = [None if t is None else t.detach().requires_grad_() for t in low]
    return low, ref


RELU_MARGIN = 1e-5


def mlp_inputs(B, C, H, W, Hd, k, *, bias1=True, bias2=True, dtype=torch.float64, device="cpu", generator=None):
    """(x, query_bias, weight1, bias1, weight2, bias2) with magnitudes like a trained PAN layer.

    Redrawn until every pre-activation W1 * F + q + b1 is at least RELU_MARGIN away from the ReLU's kink once the
    values are rounded to bf16, fp16, TF32 or fp32: there a last-bit difference in the kernel's sum would flip
    relu'(pre) and move a whole term of the gradients of W1, b1 and q (a flip, not an error the tolerances measure).
    """
    def r(*shape, std=1.0):
        return torch.randn(shape, generator=generator, dtype=torch.float64) * std

    fan_in = C * k * k
    for _ in range(200):
        args = (r(B, C, H, W), r(B, Hd, std=0.5), r(Hd, C, k, k, std=fan_in**-0.5), r(Hd, std=0.5) if bias1 else None,
                r(Hd, std=Hd**-0.5), r(std=0.5) if bias2 else None)
        if all(_relu_margin(args, rounding) >= RELU_MARGIN for rounding in _ROUNDINGS):
            return tuple(None if t is None else t.to(device=device, dtype=dtype) for t in args)
    raise AssertionError("no draw keeps the pre-activations away from the ReLU kink")


_ROUNDINGS = (
    lambda t: t.to(torch.bfloat16).double(), lambda t: t.to(torch.float16).double(),
    lambda t: round_to_tf32(t.float()).double(), lambda t: t.float().double(),
)


def _relu_margin(args, rounding) -> float:
    """min |W1 * F + q + b1| over every pre-activation, in float64 on the rounded values (inf when B = 0)."""
    x, qb, w1, b1 = (None if t is None else rounding(t) for t in args[:4])
    if x.numel() == 0:
        return float("inf")
    pre = torch.nn.functional.conv2d(x, w1, b1, padding=w1.shape[-1] // 2) + qb[:, :, None, None]
    return pre.abs().min().item()


def head_inputs(B, C, H, W, A, *, bias=True, dtype=torch.float64, device="cpu", generator=None):
    """(x, scores, cls_weight, cls_bias)."""
    def r(*shape, std=1.0):
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * std).to(device=device, dtype=dtype)

    return r(B, C, H, W), r(B, H, W, std=2.0), r(A, C, std=C**-0.5), r(A, std=0.5) if bias else None


def opcheck_samples(op: str, device):
    """Forward-operator arguments for torch.library.opcheck: with and without biases, requires_grad, channels_last."""
    if op in ("progressive_attention", "attention_scores"):
        base = [mlp_inputs(2, 3, 5, 4, 16, 3), mlp_inputs(1, 5, 3, 3, 7, 1, bias1=False, bias2=False)]
    elif op in ("hard_attention_marginal", "hard_attention_marginal_multilabel"):
        base = [head_inputs(2, 3, 5, 4, 6), head_inputs(1, 4, 3, 3, 5, bias=False)]
    else:
        base = [head_inputs(2, 3, 5, 4, 6)[:2]]
    for args in base:
        for requires_grad in (False, True):
            for channels_last in (False, True):
                t = [None if a is None else a.to(device, torch.float32) for a in args]
                if channels_last:
                    t[0] = t[0].contiguous(memory_format=torch.channels_last)
                yield [None if a is None else a.detach().requires_grad_(requires_grad) for a in t]


def backward_args(op: str, a, outs) -> tuple:
    """Arguments of the backward operator for forward arguments `a` and forward outputs `outs`."""
    g = [torch.randn_like(o) for o in outs]
    if op == "progressive_attention":
        return (g[0], g[1], *a[:5], outs[1])
    if op == "attention_scores":
        return (g[0], *a[:5])
    if op == "hard_attention_marginal":
        return (g[0], g[1], a[0], a[2], a[3], outs[2])
    if op == "hard_attention_marginal_multilabel":
        return (g[0], g[1], g[2], a[0], a[2], a[3], outs[3])
    return (g[0], g[1], a[0], outs[1])


NAN_OPS = ["progressive_attention", "hard_attention_marginal", "soft_attention_pool",
           "hard_attention_marginal_multilabel"]


def nan_case(op: str):
    """(float64 arguments of `op` with one NaN planted, call(args, backend=...) -> the output NaN must reach)."""
    import pan_kernels

    if op == "progressive_attention":
        args = list(mlp_inputs(2, 3, 6, 6, 16, 3))
        args[0][1, 2, 3, 3] = float("nan")
        return args, lambda a, **kw: pan_kernels.progressive_attention(*a, **kw)[1]
    args = list(head_inputs(2, 3, 4, 4, 5))[: 2 if op == "soft_attention_pool" else 4]
    args[1][1, 0, 2] = float("nan")
    return args, lambda a, **kw: getattr(pan_kernels, op)(*a, **kw)[0]


# ------------------------------------------------------------------ contract cases (tests/test_op_contract.py)

CONTRACT_OPS = ["progressive_attention", "attention_scores", "hard_attention_marginal", "soft_attention_pool",
                "hard_attention_marginal_multilabel"]
NUM_OUTPUTS = {"progressive_attention": 2, "attention_scores": 1, "hard_attention_marginal": 2,
               "soft_attention_pool": 2, "hard_attention_marginal_multilabel": 3}  # public outputs
# (op, output) for the ops with several outputs: back-propagate through that output alone
ONE_OUTPUT_CASES = [(op, i) for op in CONTRACT_OPS if NUM_OUTPUTS[op] > 1 for i in range(NUM_OUTPUTS[op])]


def contract_args(op: str) -> list:
    """Small float64 arguments of `op` with every bias present (k = 3, A = 6, non-square maps)."""
    if op in ("progressive_attention", "attention_scores"):
        return list(mlp_inputs(2, 3, 5, 4, 6, 3))
    args = list(head_inputs(2, 3, 4, 5, 6))
    return args[:2] if op == "soft_attention_pool" else args


def noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values (differentiably) in a non-contiguous layout: 4-d as channels_last, 2-d column-major, else
    every other element of a buffer whose gaps hold NaN. 0-d and one-element tensors come back unchanged."""
    if t.numel() <= 1:
        return t
    if t.dim() == 4 and not t.contiguous(memory_format=torch.channels_last).is_contiguous():
        return t.contiguous(memory_format=torch.channels_last)
    if t.dim() == 2 and t.shape[0] > 1 and t.shape[1] > 1:
        return t.t().contiguous().t()
    return torch.stack([t, torch.full_like(t, float("nan"))], dim=-1)[..., 0]


def check_against_reference(op: str, fn, args, device, *, tf32: bool, layout=None, only: int | None = None,
                            dtype: torch.dtype = torch.float32) -> None:
    """Outputs of fn(*kernel args) and the gradients of every argument against the float64 reference of `op`.

    layout: applied to every kernel-side argument and incoming gradient (e.g. `noncontiguous`);
    only: back-propagate through that output alone (autograd gives the backward None for the others).
    """
    from pan_kernels import reference

    low, ref = leaves(args, dtype, device, tf32)
    kernel_args = [None if t is None or layout is None else layout(t) for t in low]
    kernel_args = [k if k is not None else t for k, t in zip(kernel_args, low)]
    outs = fn(*kernel_args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    outs_ref = getattr(reference, op + "_ref")(*ref)
    outs_ref = outs_ref if isinstance(outs_ref, tuple) else (outs_ref,)
    assert len(outs) == len(outs_ref), f"{op}: {len(outs)} outputs, the reference has {len(outs_ref)}"
    for i, (got, want) in enumerate(zip(outs, outs_ref)):
        assert got.dtype == dtype
        assert_close(got, want, tolerance(dtype, tf32), f"{op} output {i}")
    picked = range(len(outs)) if only is None else [only]
    grads = {i: torch.randn(outs_ref[i].shape, dtype=torch.float64) for i in picked}
    g_kernel = [grads[i].to(device=device, dtype=dtype) for i in picked]
    g_kernel = [g if layout is None else layout(g) for g in g_kernel]
    torch.autograd.backward([outs[i] for i in picked], g_kernel)
    torch.autograd.backward([outs_ref[i] for i in picked], [grads[i] for i in picked])
    for i, (got, want) in enumerate(zip(low, ref)):
        if want is None:
            continue
        if want.grad is None:  # this output does not depend on argument i: its gradient is zero
            assert got.grad is None or not got.grad.any(), f"{op}: non-zero gradient of {ARG_NAMES[op][i]}"
            continue
        assert got.grad is not None, f"{op}: no gradient of {ARG_NAMES[op][i]}"
        name = ARG_NAMES[op][i]
        assert_close(got.grad, want.grad, tolerance(dtype, tf32, grad_kind(name)), f"{op}: grad of {name}")
