"""The registry under pytest-benchmark (not collected by the default test run, whose testpaths is tests/).

    pytest benchmarks/ --benchmark-only                                  # GPU: the paper's shapes; CPU: small ones
    PAN_BENCH_SHAPES=MREF-49,VG-28 pytest benchmarks/ --benchmark-json out.json
    pytest benchmarks/ -k "progressive_attention and fwd+bwd and triton"

Each benchmark first checks the provider against the float64 reference (the same gate as `pan bench`): a wrong
result fails the test and is never timed. The timed function ends with torch.cuda.synchronize() on a GPU.
Environment: PAN_BENCH_SCALE (full | small), PAN_BENCH_SHAPES (comma-separated names or "all"),
PAN_BENCH_DTYPES (default float32), PAN_BENCH_ROUNDS (default 50 on a GPU, 5 on the CPU).
"""

from __future__ import annotations

import os

import pytest
import torch

from pan.bench import registry
from pan.bench.registry import Unavailable
from pan.bench.run import build_call, eager_error, error_limit, prepare_case, scaled_errors

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
SCALE = os.environ.get("PAN_BENCH_SCALE", "full" if DEVICE.type == "cuda" else "small")
_SHAPES = os.environ.get("PAN_BENCH_SHAPES")
CASES = registry.select_cases(
    shapes=_SHAPES.split(",") if _SHAPES else None,
    dtypes=os.environ.get("PAN_BENCH_DTYPES", "float32").split(","),
    scale=SCALE,
    cpu_defaults=DEVICE.type == "cpu",
)
ROUNDS = int(os.environ.get("PAN_BENCH_ROUNDS", "50" if DEVICE.type == "cuda" else "5"))


def _case_id(case: registry.Case) -> str:
    return f"{case.op.name}-{case.mode}-{case.shape.name}-{case.dtype}"


@pytest.mark.parametrize("provider", registry.PROVIDERS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_op(benchmark, case: registry.Case, provider: str):
    prep = prepare_case(case, DEVICE)
    try:
        fn = registry.make_provider(provider, case.op, prep.inputs[0])
    except Unavailable as err:
        pytest.skip(str(err))
    timed, checked = build_call(fn, case.mode, prep.inputs, prep.grad_outputs)
    errors = scaled_errors(checked(), prep.expected, prep.names)
    worst = max(errors, key=errors.get)
    limit = error_limit(prep, None if provider == "eager" else eager_error(case, prep))
    assert errors[worst] <= limit, f"{provider} is wrong on {worst}: error {errors[worst]:.3g} > {limit:.3g}"

    def target():
        result = timed()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return result

    benchmark.group = _case_id(case)
    benchmark.extra_info.update(op=case.op.name, mode=case.mode, shape=case.shape.label(), dtype=case.dtype,
                                provider=provider, bytes=prep.cost.bytes, flops=prep.cost.flops,
                                max_err=errors[worst], precision=prep.precision)
    benchmark.pedantic(target, rounds=ROUNDS, warmup_rounds=3, iterations=1)
