"""Whether bf16 autocast pays on a device: ``amp="auto"`` resolves through `resolve_amp`.

bf16 autocast speeds up PAN's training on CPUs with native bf16 convolutions (oneDNN on AVX-512 with BF16 / AMX,
e.g. AMD Zen 4; indicative, docs/training-notes.md §1) and makes it 6-9x *slower* on CPUs without (AVX2 only:
oneDNN falls back to a reference path; measured 23 vs 140 images/s NCHW and 21 vs 190 channels-last on such a host,
benchmarks/results/cpu_2026-12-03_avx2_train-throughput.json). So the CPU recipes ask
for "auto", not for bf16.
"""

from __future__ import annotations

import torch

__all__ = ["check_amp", "fast_bf16", "resolve_amp"]


def check_amp(amp: object) -> None:
    """Raise ``ValueError`` unless ``amp`` is what ``TrainConfig.amp`` accepts: True, False or "auto"."""
    if not (isinstance(amp, bool) or amp == "auto"):
        raise ValueError(f"amp must be True, False or 'auto', got {amp!r}")


def fast_bf16(device: torch.device | str) -> bool:
    """True where bf16 autocast runs at least as fast as fp32 for convolutions: a CUDA device that supports bf16,
    or a CPU whose oneDNN build has native bf16 kernels (AVX-512 BW/VL/DQ or Arm BF16, the check PyTorch's own
    ``mkldnn`` bf16 path makes)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_amp(amp: bool | str, device: torch.device | str) -> bool:
    """``amp`` as a bool: True / False as given, "auto" -> `fast_bf16` (device)."""
    check_amp(amp)
    return fast_bf16(device) if amp == "auto" else amp
