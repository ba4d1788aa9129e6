"""Small launch-time policies shared by the Triton launchers."""

from __future__ import annotations

import functools

import torch


def dot_precision(x: torch.Tensor) -> str:
    """`tl.dot` input precision: TF32 for fp32 CUDA inputs when torch.backends.cudnn.allow_tf32 (as cuDNN convs do),
    else exact fp32 ("ieee"); fp16/bf16 operands always multiply exactly with fp32 accumulation."""
    if x.device.type == "cuda" and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def num_programs_target(device: torch.device) -> int:
    """How many programs a split-K launch should aim for: a few waves on a GPU, a handful in the interpreter."""
    if device.type == "cuda":
        return 4 * _sm_count(device.index if device.index is not None else torch.cuda.current_device())
    return 4
