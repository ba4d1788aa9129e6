"""Input validation shared by every backend: loud errors that name the argument and the expected shape."""

from __future__ import annotations

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_KERNEL_SIZE = 7


def _check_tensor(name: str, t, ndim: int, shape_doc: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_doc}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got {tuple(t.shape)}")


def _check_shape(name: str, t: Tensor, expected: tuple[int, ...], shape_doc: str) -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {shape_doc} = {tuple(expected)}, got {tuple(t.shape)}")


def _check_same(name: str, t: Tensor, ref: Tensor) -> None:
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of x ({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} must be on the device of x ({ref.device}), got {t.device}")


def _check_x(x) -> tuple[int, int, int, int]:
    _check_tensor("x", x, 4, "[B, C, H, W]")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64, got {x.dtype}")
    B, C, H, W = x.shape
    if C < 1 or H < 1 or W < 1:
        raise ValueError(f"x must have shape [B, C, H, W] with C, H, W >= 1, got {tuple(x.shape)}")
    return B, C, H, W


def check_attention_mlp_args(x, query_bias, weight1, bias1, weight2, bias2) -> tuple[int, int, int, int, int, int]:
    """Validate the arguments of progressive_attention / attention_scores; return (B, C, H, W, Hd, k)."""
    B, C, H, W = _check_x(x)
    _check_tensor("weight1", weight1, 4, "[Hd, C, k, k]")
    Hd, C_w, k, k2 = weight1.shape
    if C_w != C or k != k2 or Hd < 1:
        raise ValueError(f"weight1 must have shape [Hd, C={C}, k, k], got {tuple(weight1.shape)}")
    if k % 2 == 0 or not 1 <= k <= MAX_KERNEL_SIZE:
        raise ValueError(f"weight1 must have an odd kernel size k in 1..{MAX_KERNEL_SIZE}, got k={k}")
    _check_tensor("query_bias", query_bias, 2, "[B, Hd]")
    _check_shape("query_bias", query_bias, (B, Hd), "[B, Hd]")
    _check_tensor("weight2", weight2, 1, "[Hd]")
    _check_shape("weight2", weight2, (Hd,), "[Hd]")
    checked = [("query_bias", query_bias), ("weight1", weight1), ("weight2", weight2)]
    if bias1 is not None:
        _check_tensor("bias1", bias1, 1, "[Hd] or None")
        _check_shape("bias1", bias1, (Hd,), "[Hd]")
        checked.append(("bias1", bias1))
    if bias2 is not None:
        _check_tensor("bias2", bias2, 0, "[] (a 0-d tensor) or None")
        checked.append(("bias2", bias2))
    for name, t in checked:
        _check_same(name, t, x)
    return B, C, H, W, Hd, k


def check_spatial_head_args(x, scores, cls_weight=None, cls_bias=None, *, with_classifier: bool):
    """Validate hard_attention_marginal / soft_attention_pool arguments; return (B, C, H, W, A), A = 0 without
    a classifier."""
    B, C, H, W = _check_x(x)
    _check_tensor("scores", scores, 3, "[B, H, W]")
    _check_shape("scores", scores, (B, H, W), "[B, H, W]")
    _check_same("scores", scores, x)
    A = 0
    if with_classifier:
        _check_tensor("cls_weight", cls_weight, 2, "[A, C]")
        A, C_w = cls_weight.shape
        if C_w != C or A < 1:
            raise ValueError(f"cls_weight must have shape [A, C={C}] with A >= 1, got {tuple(cls_weight.shape)}")
        _check_same("cls_weight", cls_weight, x)
        if cls_bias is not None:
            _check_tensor("cls_bias", cls_bias, 1, "[A] or None")
            _check_shape("cls_bias", cls_bias, (A,), "[A]")
            _check_same("cls_bias", cls_bias, x)
    return B, C, H, W, A
