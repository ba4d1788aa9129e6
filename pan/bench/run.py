"""The op benchmark runner: check each provider against a float64 reference, then time it (STYLE.md 11 and 13).

For every case (op, shape, mode, dtype) and provider:
1. inputs are drawn once (float64, seeded) and rounded to the dtype; output gradients likewise;
2. the provider runs once; its outputs (and, in "bwd"/"fwd+bwd", the gradients of every input) are compared with
   the eager reference evaluated in float64 on the same rounded inputs. The error is max|a - e| / max(max|e|, 1)
   over each tensor. A provider passes when the error is within the dtype's tolerance (TOLERANCES), or within
   4x the eager provider's own error in that dtype (FlashAttention's rule: a kernel may be as inexact as eager
   PyTorch in the same precision, up to a factor). A failure marks the row "refused: wrong result" and the
   provider is not timed: no time, bandwidth or speedup is ever reported for a wrong result;
3. only then it is timed (timing.time_fn) and its peak memory measured (timing.peak_memory_mb).
Modes: "fwd" runs under torch.no_grad() (inference); "bwd" times torch.autograd.grad over a retained graph built once;
"fwd+bwd" times the forward and the gradient of every input. Output gradients are random and cover every output
(alpha too: users regularise attention).
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from pan.bench import registry, roofline, timing
from pan.bench.registry import Case, Unavailable, as_tuple

# Error bound, relative to max(max|reference|, 1), by dtype. fp32 on a GPU depends on TF32 (set per run).
TOLERANCES = {"float32": 2e-4, "float32-tf32": 2e-2, "bfloat16": 6e-2, "float16": 1e-2}
EAGER_ERROR_FACTOR = 4.0


@dataclass
class Row:
    """One provider on one case. Timing fields are None unless status == "ok"."""

    op: str
    mode: str
    shape: str
    shape_name: str
    dtype: str
    provider: str
    status: str = "ok"
    reason: str | None = None
    precision: str | None = None
    median_us: float | None = None
    p20_us: float | None = None
    p80_us: float | None = None
    peak_mem_mb: float | None = None
    gbps: float | None = None
    tflops: float | None = None
    speedup_vs_eager: float | None = None
    speedup_vs_compile: float | None = None
    bytes: int | None = None
    flops: int | None = None
    floor_us: float | None = None
    pct_of_floor: float | None = None
    pct_of_peak_bw: float | None = None
    pct_of_peak_flops: float | None = None
    max_err: float | None = None
    tol: float | None = None
    worst_tensor: str | None = None
    timing: str | None = None
    reps: int | None = None
    h_policy: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def precision_label(dtype: str, device: torch.device) -> str:
    if dtype != "float32":
        return dtype
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "float32-tf32"
    return "float32"


# ------------------------------------------------------------------------------------------ call builders


def _zeros_for_none(grads, leaves) -> tuple[Tensor, ...]:
    return tuple(torch.zeros_like(leaf) if g is None else g for g, leaf in zip(grads, leaves, strict=True))


def build_call(fn: Callable, mode: str, inputs: tuple, grad_outputs: tuple) -> tuple[Callable, Callable]:
    """(timed, checked): the callable to time for `mode`, and one returning every tensor to check (outputs, then
    input gradients in input order, None inputs skipped)."""
    if mode == "fwd":
        def timed():
            with torch.no_grad():
                return fn(*inputs)

        return timed, lambda: as_tuple(timed())
    leaves = tuple(None if t is None else t.detach().requires_grad_() for t in inputs)
    diff = tuple(t for t in leaves if t is not None)
    if mode == "bwd":
        outs = as_tuple(fn(*leaves))

        def timed():
            return torch.autograd.grad(outs, diff, grad_outputs, retain_graph=True, allow_unused=True)

        return timed, lambda: tuple(o.detach() for o in outs) + _zeros_for_none(timed(), diff)
    if mode == "fwd+bwd":
        def step():
            outs = as_tuple(fn(*leaves))
            return outs, torch.autograd.grad(outs, diff, grad_outputs, allow_unused=True)

        def checked():
            outs, grads = step()
            return tuple(o.detach() for o in outs) + _zeros_for_none(grads, diff)

        return (lambda: step()[1]), checked
    raise ValueError(f"unknown mode {mode!r}")


def reference_result(case: Case, inputs: tuple, grad_outputs: tuple, mode: str) -> tuple[Tensor, ...]:
    """The eager reference in float64 on the same (rounded) inputs: outputs, then input gradients unless fwd."""
    inputs64 = tuple(None if t is None else t.detach().double() for t in inputs)
    grads64 = tuple(g.double() for g in grad_outputs)
    _, checked = build_call(case.op.ref, mode if mode == "fwd" else "fwd+bwd", inputs64, grads64)
    return checked()


def tensor_names(case: Case, inputs: tuple) -> list[str]:
    names = list(case.op.output_names)
    if case.mode != "fwd":
        names += [f"d{n}" for n, t in zip(case.op.input_names, inputs, strict=True) if t is not None]
    return names


def scaled_errors(actual: tuple, expected: tuple, names: list[str]) -> dict[str, float]:
    """max|a - e| / max(max|e|, 1) per tensor; inf for a shape mismatch or NaN where the reference is finite."""
    errors = {}
    if len(actual) != len(expected):
        return {"<count>": math.inf}
    for name, a, e in zip(names, actual, expected, strict=True):
        if tuple(a.shape) != tuple(e.shape):
            errors[name] = math.inf
            continue
        if e.numel() == 0:
            errors[name] = 0.0
            continue
        a, e = a.detach().double(), e.detach().double().to(a.device)
        if bool((torch.isnan(a) & ~torch.isnan(e)).any()):
            errors[name] = math.inf
            continue
        diff = (a - e).abs().nan_to_num(0.0).max().item()
        errors[name] = diff / max(e.abs().nan_to_num(0.0).max().item(), 1.0)
    return errors


def eager_error(case: Case, prep: Prepared) -> float:
    """The eager provider's own error in the case's dtype (the scale of FlashAttention's rule)."""
    fn = registry.make_provider("eager", case.op, prep.inputs[0])
    _, checked = build_call(fn, case.mode, prep.inputs, prep.grad_outputs)
    return max(scaled_errors(checked(), prep.expected, prep.names).values(), default=0.0)


def error_limit(prep: Prepared, eager_err: float | None) -> float:
    """A provider passes with error <= this: the dtype's tolerance, or EAGER_ERROR_FACTOR x eager's own error."""
    return prep.tol if eager_err is None else max(prep.tol, EAGER_ERROR_FACTOR * eager_err)


def _first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
    return text if len(text) <= 300 else text[:297] + "..."


@contextlib.contextmanager
def _dynamo_limits():
    """Raise dynamo's recompile limit for the run (one compiled wrapper per op sees every shape, dtype and grad mode)
    and make hitting it an error, so the compile provider never falls back to eager silently."""
    import torch._dynamo

    settings = {}
    for key, value in (("recompile_limit", 512), ("cache_size_limit", 512), ("accumulated_recompile_limit", 4096),
                       ("accumulated_cache_size_limit", 4096), ("fail_on_recompile_limit_hit", True)):
        if hasattr(torch._dynamo.config, key):
            settings[key] = value
    with torch._dynamo.config.patch(**settings):
        yield


# ------------------------------------------------------------------------------------------ case preparation


@dataclass
class Prepared:
    """A case's inputs, output gradients, float64 expectation, tolerance and cost (shared by every provider)."""

    inputs: tuple
    grad_outputs: tuple
    expected: tuple
    names: list[str]
    cost: roofline.Cost
    precision: str
    tol: float


_EXPECTED_CACHE: dict = {}


def prepare_case(case: Case, device: torch.device, seed: int = 0) -> Prepared:
    """Draw the inputs (seed) and output gradients (seed + 1), and evaluate the float64 reference once per
    (op, shape, dtype) for all three modes (the last one is cached: cases come grouped by shape)."""
    spec, shape = case.op, case.shape
    dtype = registry.DTYPES[case.dtype]
    inputs = spec.make_inputs(shape, dtype, device, seed=seed)
    key = (spec.name, shape, case.dtype, str(device), seed)
    if key not in _EXPECTED_CACHE:
        with torch.no_grad():
            out_shapes = [o.shape for o in as_tuple(spec.ref(*(None if t is None else t.double() for t in inputs)))]
        generator = torch.Generator().manual_seed(seed + 1)
        grads = tuple(torch.randn(s, generator=generator, dtype=torch.float64).to(device, dtype) for s in out_shapes)
        _EXPECTED_CACHE.clear()
        _EXPECTED_CACHE[key] = (grads, reference_result(case, inputs, grads, "fwd+bwd"))
    grad_outputs, full = _EXPECTED_CACHE[key]
    expected = full[: len(grad_outputs)] if case.mode == "fwd" else full
    precision = precision_label(case.dtype, device)
    return Prepared(inputs, grad_outputs, expected, tensor_names(case, inputs),
                    roofline.op_cost(spec.name, shape, case.mode, dtype), precision, TOLERANCES[precision])


# ----------------------------------------------------------------------------------------------- the runner


@dataclass
class RunOptions:
    providers: tuple[str, ...] = registry.PROVIDERS
    warmup_ms: float | None = None
    rep_ms: float | None = None
    cudagraph: bool = False
    nvtx: bool = False
    compile_mode: str | None = None
    seed: int = 0
    verbose: bool = False


def run_case(case: Case, device: torch.device, options: RunOptions, roof: roofline.Roofline | None = None,
             extra_providers: dict[str, Callable] | None = None, log: Callable[[str], None] | None = None) -> list[Row]:
    """Check and time every provider on one case; returns one Row per provider (extra_providers after them).

    extra_providers maps a name to a callable with the reference's signature (used by tests to inject one).
    """
    spec, shape = case.op, case.shape
    prep = prepare_case(case, device, options.seed)
    inputs, grad_outputs, cost, precision, tol = prep.inputs, prep.grad_outputs, prep.cost, prep.precision, prep.tol
    dtype = registry.DTYPES[case.dtype]
    h_policy = shape.h_policy if spec.name in ("progressive_attention", "attention_scores") else None
    floor = roof.floor_us(cost, dtype) if roof is not None else None

    providers: list[tuple[str, Callable | None]] = [(p, None) for p in options.providers]
    providers += list((extra_providers or {}).items())
    rows, eager_err = [], None
    for name, given in providers:
        row = Row(spec.name, case.mode, shape.label(), shape.name, case.dtype, name, precision=precision,
                  bytes=cost.bytes, flops=cost.flops, floor_us=floor, tol=tol, h_policy=h_policy)
        rows.append(row)
        try:
            fn = given if given is not None else registry.make_provider(
                name, spec, inputs[0], compile_mode=options.compile_mode)
            timed, checked = build_call(fn, case.mode, inputs, grad_outputs)
            errors = scaled_errors(checked(), prep.expected, prep.names)
        except Unavailable as err:
            row.status, row.reason = "skipped", str(err)
            continue
        except Exception as err:  # a provider that crashes is reported, not fatal to the run
            row.status, row.reason = "failed", _first_line(err)
            if options.verbose:
                traceback.print_exc()
            continue
        worst = max(errors, key=errors.get) if errors else None
        row.max_err, row.worst_tensor = (errors[worst], worst) if worst else (0.0, None)
        limit = error_limit(prep, None if name == "eager" else eager_err)
        row.tol = limit
        if name == "eager":
            eager_err = row.max_err
        if not row.max_err <= limit:
            row.status = "refused: wrong result"
            row.reason = f"{worst}: error {row.max_err:.3g} > tolerance {limit:.3g}; not timed"
            continue
        label = f"{spec.name}:{case.mode}:{shape.name}:{case.dtype}:{name}"
        call = timed
        if options.nvtx:
            def call(timed=timed, label=label):
                with timing.op_range(label):
                    return timed()
        try:
            t = timing.time_fn(call, device, warmup_ms=options.warmup_ms, rep_ms=options.rep_ms,
                               cudagraph=options.cudagraph)
        except Exception as err:
            if not options.cudagraph:
                row.status, row.reason = "failed", f"timing: {_first_line(err)}"
                continue
            t = timing.time_fn(call, device, warmup_ms=options.warmup_ms, rep_ms=options.rep_ms)
            row.reason = f"CUDA-graph timing failed ({_first_line(err)}); timed with do_bench"
        row.median_us, row.p20_us, row.p80_us, row.timing, row.reps = t.median_us, t.p20_us, t.p80_us, t.method, t.reps
        row.peak_mem_mb = timing.peak_memory_mb(timed, device)
        seconds = t.median_us * 1e-6
        row.gbps = cost.bytes / seconds / 1e9
        row.tflops = cost.flops / seconds / 1e12
        if roof is not None:
            if floor is not None:
                row.pct_of_floor = 100.0 * floor / t.median_us
            row.pct_of_peak_bw = 100.0 * row.gbps / roof.copy_gbps if roof.copy_gbps else None
            rate = roof.matmul_tflops.get(case.dtype)
            row.pct_of_peak_flops = 100.0 * row.tflops / rate if rate else None
        del timed, checked, call
        if log is not None:
            log(f"  {label}: {t.median_us:.1f} us")
    add_speedups(rows)
    return rows


def add_speedups(rows: list[Row]) -> None:
    """speedup_vs_eager / _vs_compile = baseline median / row median, only between rows that passed and were timed."""
    by_provider = {r.provider: r for r in rows}
    for row in rows:
        if row.median_us is None:
            continue
        for base_name, attr in (("eager", "speedup_vs_eager"), ("compile", "speedup_vs_compile")):
            base = by_provider.get(base_name)
            if base is not None and base.median_us is not None:
                setattr(row, attr, base.median_us / row.median_us)


def run_cases(cases: list[Case], device: torch.device, options: RunOptions, roof: roofline.Roofline | None = None,
              extra_providers: dict[str, Callable] | None = None,
              log: Callable[[str], None] | None = None) -> list[Row]:
    """Run every case in order; returns all rows."""
    rows = []
    with _dynamo_limits():
        for case in cases:
            if log is not None:
                log(f"{case.op.name} {case.mode} {case.shape.name} ({case.shape.label()}) {case.dtype}")
            rows += run_case(case, device, options, roof, extra_providers, log)
    return rows
