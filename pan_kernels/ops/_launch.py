"""Small launch-time policies shared by the Triton launchers (tile sizes and precision depend on these)."""

from __future__ import annotations

import functools

import torch


def on_gpu(x: torch.Tensor) -> bool:
    """Whether launches for `x` target a GPU (GPU tile sizes) rather than the CPU interpreter (small tiles)."""
    return x.device.type == "cuda"


def dot_precision(x: torch.Tensor) -> str:
    """`tl.dot` input precision: TF32 for fp32 GPU inputs when torch.backends.cudnn.allow_tf32 (as cuDNN convs do),
    else exact fp32 ("ieee"); fp16/bf16 operands always multiply exactly with fp32 accumulation. In the CPU
    interpreter bf16 operands are widened first ("upcast", see _triton_utils.mma)."""
    if not on_gpu(x):
        return "upcast" if x.dtype == torch.bfloat16 else "ieee"
    if x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"


@functools.cache
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def num_programs_target(x: torch.Tensor) -> int:
    """How many programs a split launch should aim for: a few waves on a GPU, a handful in the interpreter."""
    if x.device.type == "cuda":
        return 4 * _sm_count(x.device.index if x.device.index is not None else torch.cuda.current_device())
    # CPU tensors under the GPU tile policy: the sm_90 ahead-of-time compile check (4 waves of an H100's 132 SMs)
    return 528 if on_gpu(x) else 4
