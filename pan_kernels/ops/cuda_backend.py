"""Attaches fakes and autograd to the `pan_kernels::<op>_cuda[_backward]` operators defined by the C++ extension."""

from __future__ import annotations

from pan_kernels import _C  # noqa: F401  (loading the library defines the operators)
from pan_kernels.ops.registry import register_backend

register_backend("cuda")
