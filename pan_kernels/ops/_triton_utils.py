"""Triton device helpers shared by the kernels."""

import triton
import triton.language as tl


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr):
    """acc + a @ b on the tensor cores with fp32 accumulation.

    PRECISION is a `tl.dot` input precision ("tf32", "ieee"), or "upcast": the Triton CPU interpreter multiplies
    bfloat16 operands wrongly (numpy has no bfloat16), so there they are widened to fp32 first.
    """
    if PRECISION == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc, input_precision=PRECISION)
