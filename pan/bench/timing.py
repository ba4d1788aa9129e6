"""Timers, peak memory and profiler ranges.

GPU: `triton.testing.do_bench` (CUDA events, L2 flushed before each call) at quantiles [0.5, 0.2, 0.8], or
`do_bench_cudagraph` (replays of a captured graph) for launch-bound shapes. CPU: wall-clock median and p20/p80 of
repeated calls.

Peak memory: on a GPU, `torch.cuda.max_memory_allocated()` minus the memory allocated before one call, i.e. what the
call itself allocates at its peak (its outputs included; inputs and, for "bwd", the saved forward excluded). On the CPU
it is reported as null: torch's CPU allocator keeps no peak statistics and tracemalloc does not see tensor memory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

QUANTILES = (0.5, 0.2, 0.8)


@dataclass
class Timing:
    """Microseconds: median, 20th and 80th percentiles, how many timed calls, and the method."""

    median_us: float
    p20_us: float
    p80_us: float
    reps: int
    method: str


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending list."""
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def wall_clock(fn: Callable, warmup_ms: float = 20.0, rep_ms: float = 200.0, min_reps: int = 3,
               max_reps: int = 1000) -> Timing:
    """CPU timing: warm up for ~warmup_ms, then time single calls for ~rep_ms (at least min_reps)."""
    start = time.perf_counter()
    fn()
    estimate = time.perf_counter() - start
    while (time.perf_counter() - start) * 1e3 < warmup_ms:
        fn()
    reps = int(min(max_reps, max(min_reps, rep_ms / max(estimate * 1e3, 1e-3))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return Timing(quantile(times, 0.5), quantile(times, 0.2), quantile(times, 0.8), reps, "wall-clock")


def gpu_time(fn: Callable, warmup_ms: float = 25.0, rep_ms: float = 100.0, cudagraph: bool = False) -> Timing:
    """GPU timing with triton.testing (milliseconds converted to microseconds)."""
    from triton import testing

    if cudagraph:
        med, p20, p80 = testing.do_bench_cudagraph(fn, rep=rep_ms, quantiles=list(QUANTILES))
        method = "do_bench_cudagraph"
    else:
        med, p20, p80 = testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=list(QUANTILES))
        method = "do_bench"
    return Timing(med * 1e3, p20 * 1e3, p80 * 1e3, 0, method)


def time_fn(fn: Callable, device: torch.device, *, warmup_ms: float | None = None, rep_ms: float | None = None,
            cudagraph: bool = False) -> Timing:
    """Time `fn` on `device`: events on a GPU, wall clock on the CPU."""
    if device.type == "cuda":
        return gpu_time(fn, warmup_ms or 25.0, rep_ms or 100.0, cudagraph=cudagraph)
    return wall_clock(fn, warmup_ms if warmup_ms is not None else 20.0, rep_ms if rep_ms is not None else 200.0)


def peak_memory_mb(fn: Callable, device: torch.device) -> float | None:
    """MiB that one call of `fn` allocates at its peak (GPU), or None on the CPU (see the module docstring)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - base
    del result
    return peak / 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def op_range(name: str):
    """A named range: NVTX (seen by Nsight Systems) when CUDA is available, plus a torch.profiler record_function
    range (seen in Chrome traces) everywhere."""
    with contextlib.ExitStack() as stack:
        if torch.cuda.is_available():
            stack.enter_context(torch.cuda.nvtx.range(name))
        stack.enter_context(torch.profiler.record_function(name))
        yield
