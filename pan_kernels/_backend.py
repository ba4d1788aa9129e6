"""Backend discovery and selection shared by every op: "torch", "triton", "cuda", "auto"."""

from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = ("auto", "torch", "triton", "cuda")

# Preference of compiled backends for backend="auto" on CUDA tensors, fastest measured first.
AUTO_PREFERENCE = {
    "progressive_attention": ("triton", "cuda"),
    "attention_scores": ("triton", "cuda"),
    "hard_attention_marginal": ("triton", "cuda"),
    "soft_attention_pool": ("triton", "cuda"),
    "hard_attention_marginal_multilabel": ("triton", "cuda"),
}


def _load_cuda_extension() -> bool:
    try:
        from pan_kernels import _C  # noqa: F401
    except ImportError:
        return False
    return True


# Decided once at import: plain constants keep backend selection free of caches and imports under torch.compile.
_HAS_TRITON = importlib.util.find_spec("triton") is not None
_HAS_CUDA_EXTENSION = _load_cuda_extension()


def has_triton() -> bool:
    """True when the `triton` package is importable."""
    return _HAS_TRITON


def triton_interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 set before triton was imported)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def has_cuda_extension() -> bool:
    """True when the compiled extension `pan_kernels._C` (built from csrc/) was built and loads."""
    return _HAS_CUDA_EXTENSION


def _triton_usable(device: torch.device) -> str | None:
    """None when Triton kernels can run on `device`, else the reason why not."""
    if not has_triton():
        return "the triton package is not installed (pip install 'pan-kernels[triton]')"
    if device.type == "cuda":
        return None
    if device.type == "cpu":
        if triton_interpreting():
            return None
        return (
            "Triton kernels run on CPU tensors only in the Triton interpreter: set TRITON_INTERPRET=1 in the "
            "environment before Python starts, or use backend='torch'"
        )
    return f"Triton kernels do not run on {device.type} tensors"


def _cuda_usable(device: torch.device) -> str | None:
    if not has_cuda_extension():
        return (
            "the CUDA extension pan_kernels._C is not built: reinstall with CUDA_HOME set and a CUDA build of torch "
            "(pip install -e . --no-build-isolation), or use backend='triton'"
        )
    if device.type != "cuda":
        return f"the CUDA backend needs CUDA tensors, got {device.type} tensors"
    return None


def resolve_backend(op: str, backend: str, x: torch.Tensor) -> str:
    """Map the user's `backend` argument to the backend that runs `op` on `x`, or raise a clear error."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    compiled_ok = x.dtype != torch.float64
    if backend == "auto":
        if x.device.type != "cuda" or not compiled_ok:
            return "torch"
        for candidate in AUTO_PREFERENCE[op]:
            usable = _triton_usable if candidate == "triton" else _cuda_usable
            if usable(x.device) is None:
                return candidate
        return "torch"
    if not compiled_ok:
        raise TypeError(
            f"backend={backend!r} supports float16, bfloat16 and float32 x; float64 runs on backend='torch'"
        )
    if backend not in AUTO_PREFERENCE[op]:
        raise RuntimeError(f"backend={backend!r} does not implement {op} yet; use backend='triton' or 'torch'")
    reason = (_triton_usable if backend == "triton" else _cuda_usable)(x.device)
    if reason is not None:
        raise RuntimeError(f"backend={backend!r} is unavailable for {op}: {reason}")
    return backend
