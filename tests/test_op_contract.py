"""Contracts of the Triton ops beyond the shape tables of test_triton_ops.py, each aimed at a likely bug:

- every argument and every incoming gradient non-contiguous (channels_last weight1, column-major cls_weight, strided
  scores and query_bias, expanded gradients): a launcher that passes a pointer without .contiguous() or assumes
  strides reads the wrong elements;
- the gradient of ONE output while the others are unused (autograd hands the backward None for them): a backward that
  mishandles the missing gradients, or sends the gradient of one output through the path of another.

fp32 against the float64 reference; the same cases run on the emulated CUDA kernels in test_cuda_extension.py.
"""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from tests.helpers import (
    CONTRACT_OPS,
    ONE_OUTPUT_CASES,
    check_against_reference,
    contract_args,
    fp32_tf32_active,
    noncontiguous,
)


def _triton(op):
    return lambda *args: getattr(pan_kernels, op)(*args, backend="triton")


@pytest.mark.parametrize("op", CONTRACT_OPS)
def test_noncontiguous_arguments_and_gradients(op, device, poison_empty):
    args = contract_args(op)
    check_against_reference(op, _triton(op), args, device, tf32=fp32_tf32_active(device), layout=noncontiguous)


@pytest.mark.parametrize("op,output", ONE_OUTPUT_CASES)
def test_gradient_of_one_output_alone(op, output, device, poison_empty):
    check_against_reference(op, _triton(op), contract_args(op), device, tf32=fp32_tf32_active(device), only=output)


def test_noncontiguous_helper_keeps_values_and_breaks_contiguity():
    for t in contract_args("hard_attention_marginal") + contract_args("progressive_attention")[:5]:
        nc = noncontiguous(t)
        assert torch.equal(nc, t) and (not nc.is_contiguous() or t.numel() <= 1)
