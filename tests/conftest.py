"""Test configuration: device selection, the Triton interpreter on CPU-only machines, the CUDA emulator on by
default, seeds, NaN poisoning.

On a machine without a GPU, Triton kernels run on CPU tensors in the Triton interpreter, which must be switched
on before triton is first imported; on a GPU machine the same tests run the compiled kernels on CUDA tensors.
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The csrc/ CUDA kernels also run in their CPU emulator (csrc/emu/, built with g++ once per session, about 15 s) by
# default, so `python -m pytest -q` is the whole suite, as CI runs it; PAN_TEST_EMULATION=0 leaves those cases out.
os.environ.setdefault("PAN_TEST_EMULATION", "1")

import pytest  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def device() -> torch.device:
    """Where kernel tests run: CUDA when present, else CPU (Triton interpreter)."""
    return DEVICE


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def poison_empty(monkeypatch):
    """Fill every float buffer the library allocates with NaN, so a kernel that leaves part of its output unwritten
    fails instead of passing on whatever the allocator returned."""

    def poisoned(factory):
        def alloc(*args, **kwargs):
            t = factory(*args, **kwargs)
            if t.is_floating_point():
                t.fill_(float("nan"))
            return t

        return alloc

    monkeypatch.setattr(torch, "empty", poisoned(torch.empty))
    monkeypatch.setattr(torch, "empty_like", poisoned(torch.empty_like))
    monkeypatch.setattr(torch.Tensor, "new_empty", poisoned(torch.Tensor.new_empty))
    yield
