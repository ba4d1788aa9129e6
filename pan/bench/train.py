"""End-to-end: PAN[H]+CTX training steps per backend (images/s, peak memory), and a profiled training step.

A step is the paper's: forward on images [B, 3, 100, 100] and queries [B], NLL of the attribute, backward, gradient
clipping at norm 5, RMSprop. The batch stays on the device (no data loading is timed). Every variant starts from
the same weights; before it is timed, its first forward is compared with the eager model's log-probabilities on
the same batch, and a variant that disagrees is refused, not timed.

Variants: <backend>[+compile|+graphs] for backend in torch, triton, cuda. "+compile" wraps the model in
torch.compile; "+graphs" captures forward and backward as CUDA graphs (torch.cuda.make_graphed_callables; GPU
only). Peak memory is torch.cuda.max_memory_allocated() over the variant's whole life (build, check, compile or
capture, warm-up and timed steps) minus what was allocated before it was built (the batch): model, optimizer state,
activations, workspaces and CUDA-graph pools (the model itself is ~30K parameters); null on the CPU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from pan.bench import timing

MODEL = "pan-h-ctx"
IMAGE_SIZE = 100
NUM_QUERIES, NUM_CLASSES = 10, 5
VARIANTS = ("torch", "torch+compile", "torch+graphs", "triton", "triton+compile", "triton+graphs", "cuda",
            "cuda+compile", "cuda+graphs")
DEFAULT_VARIANTS = ("torch", "torch+compile", "torch+graphs", "triton", "cuda", "triton+graphs", "cuda+graphs")
LOG_PROB_TOL = {"cpu": 1e-3, "cuda": 5e-2}  # |log p - log p_eager| at initialisation (TF32 convs on a GPU)


def build_model(backend: str):
    """pan.models.build_model(MODEL, backend=...), imported lazily with a clear error if it is missing."""
    try:
        from pan.models import build_model as _build
    except ImportError as err:
        raise RuntimeError(f"the training benchmark needs pan.models.build_model, which is not importable: {err}") \
            from err
    return _build(MODEL, backend=backend, num_queries=NUM_QUERIES, num_classes=NUM_CLASSES)


@dataclass
class TrainResult:
    variant: str
    backend: str
    batch: int
    steps: int
    status: str = "ok"
    reason: str | None = None
    median_ms: float | None = None
    p20_ms: float | None = None
    p80_ms: float | None = None
    images_per_s: float | None = None
    peak_mem_mb: float | None = None
    warmup_s: float | None = None
    max_logprob_err: float | None = None
    speedup_vs_eager: float | None = None
    mem_vs_eager: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def make_batch(batch: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g).to(device)
    query = torch.randint(0, NUM_QUERIES, (batch,), generator=g).to(device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=g).to(device)
    return images, query, labels


def make_step(model, forward: Callable, optimizer) -> Callable:
    def step(images, query, labels):
        optimizer.zero_grad(set_to_none=True)
        with timing.op_range("forward"):
            out = forward(images, query)
            loss = F.nll_loss(out.log_probs if hasattr(out, "log_probs") else out[0], labels)
        with timing.op_range("backward"):
            loss.backward()
        with timing.op_range("optimizer"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        return loss

    return step


def _parse_variant(variant: str) -> tuple[str, str | None]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown training variant {variant!r}; choose from {VARIANTS}")
    backend, _, extra = variant.partition("+")
    return backend, extra or None


def _check_backend(backend: str, device: torch.device) -> None:
    from pan_kernels._backend import resolve_backend

    resolve_backend("progressive_attention", backend, torch.empty(0, 1, 1, 1, device=device))


def _timed_steps(step: Callable, batch, steps: int, device: torch.device) -> list[float]:
    """Milliseconds per step (CUDA events on a GPU, wall clock on the CPU)."""
    out = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step(*batch)
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step(*batch)
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def run_variant(variant: str, state: dict, batch, ref_log_probs: torch.Tensor, device: torch.device, steps: int,
                warmup: int) -> TrainResult:
    backend, extra = _parse_variant(variant)
    images = batch[0]
    result = TrainResult(variant, backend, images.shape[0], steps)
    try:
        _check_backend(backend, device)
        if extra == "graphs" and device.type != "cuda":
            raise RuntimeError("CUDA graphs need a GPU")
    except RuntimeError as err:
        result.status, result.reason = "skipped", str(err)
        return result
    try:
        if device.type == "cuda":
            # Everything the variant allocates counts: model, optimizer state, activations, compile workspaces and
            # CUDA-graph pools (a graph's pool is allocated at capture and held, so measuring only the timed steps
            # would flatter "+graphs").
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        torch.manual_seed(0)
        model = build_model(backend).to(device)
        model.load_state_dict(state)
        model.train()
        forward = model
        t0 = time.perf_counter()
        if extra == "compile":
            forward = torch.compile(model)
        elif extra == "graphs":
            # Triton JIT-compiles on first call and must not compile inside a capture: warm up eagerly first.
            make_step(model, model, torch.optim.RMSprop(model.parameters(), lr=0.0))(*batch)
            model.load_state_dict(state)
            forward = torch.cuda.make_graphed_callables(model, (images, batch[1]), allow_unused_input=True)
        # The check runs the variant itself (compiled or graphed), with autograd on as in training.
        log_probs = forward(images, batch[1]).log_probs.detach().clone()
        model.load_state_dict(state)  # undo the batch-norm statistics of the check
        err = (log_probs.double() - ref_log_probs.double()).abs().max().item()
        result.max_logprob_err = err
        if not err <= LOG_PROB_TOL[device.type]:
            result.status = "refused: wrong result"
            result.reason = f"log-probs differ from eager by {err:.3g} > {LOG_PROB_TOL[device.type]}; not timed"
            return result
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
        step = make_step(model, forward, optimizer)
        for _ in range(warmup):
            step(*batch)
        timing.sync(device)
        result.warmup_s = time.perf_counter() - t0
        times = sorted(_timed_steps(step, batch, steps, device))
        if device.type == "cuda":
            result.peak_mem_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    except Exception as err:  # a variant that crashes is reported, not fatal
        text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
        result.status, result.reason = "failed", text[:300]
        return result
    result.median_ms = timing.quantile(times, 0.5)
    result.p20_ms, result.p80_ms = timing.quantile(times, 0.2), timing.quantile(times, 0.8)
    result.images_per_s = result.batch / (result.median_ms * 1e-3)
    return result


def run_training(device: torch.device, batch_size: int, variants=DEFAULT_VARIANTS, steps: int = 20,
                 warmup: int = 3, log: Callable[[str], None] | None = None) -> list[TrainResult]:
    """Time every variant from the same initial weights; speedups and memory ratios are against "torch"."""
    torch.manual_seed(0)
    eager = build_model("torch").to(device).train()
    state = {k: v.detach().clone() for k, v in eager.state_dict().items()}
    batch = make_batch(batch_size, device)
    with torch.no_grad():
        ref_log_probs = eager(batch[0], batch[1]).log_probs
    del eager
    results = []
    for variant in variants:
        if log is not None:
            log(f"train {variant} (batch {batch_size})")
        results.append(run_variant(variant, state, batch, ref_log_probs, device, steps, warmup))
        with contextlib.suppress(Exception):
            torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    base = next((r for r in results if r.variant == "torch" and r.median_ms is not None), None)
    for r in results:
        if base is not None and r.median_ms is not None:
            r.speedup_vs_eager = base.median_ms / r.median_ms
            if base.peak_mem_mb and r.peak_mem_mb is not None:
                r.mem_vs_eager = r.peak_mem_mb / base.peak_mem_mb
    return results


# ---------------------------------------------------------------------------------------------------- profile


def _range_hooks(model) -> list:
    """Forward (pre-)hooks that open a named range around each attention layer and each backbone stage."""
    from pan_kernels import HardAttentionHead, ProgressiveAttention, SoftAttentionHead

    handles = []
    for name, module in model.named_modules():
        is_stage = name.startswith("backbone.stages.") and name.count(".") == 2
        if not (is_stage or isinstance(module, (ProgressiveAttention, HardAttentionHead, SoftAttentionHead))):
            continue
        label = f"{type(module).__name__}:{name}"
        stack: list = []

        def pre(_module, _args, label=label, stack=stack):
            ctx = timing.op_range(label)
            ctx.__enter__()
            stack.append(ctx)

        def post(_module, _args, _out, stack=stack):
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def profile_training_step(path: str, device: torch.device, backend: str, batch_size: int, warmup: int = 2,
                          steps: int = 1) -> str:
    """Write a Chrome trace (torch.profiler) of `steps` training steps after `warmup` steps; return a summary table.

    Ranges: "train_step", "forward", "backward", "optimizer", and one per attention layer and backbone stage (NVTX
    ranges too when CUDA is available, so the same run under Nsight Systems shows them).
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    torch.manual_seed(0)
    model = build_model(backend).to(device).train()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    step = make_step(model, model, optimizer)
    batch = make_batch(batch_size, device)
    handles = _range_hooks(model)
    try:
        for _ in range(warmup):
            step(*batch)
        timing.sync(device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities, record_shapes=True, profile_memory=True) as prof:
            for _ in range(steps):
                with record_function("train_step"), timing.op_range(f"train_step:{MODEL}:{backend}"):
                    step(*batch)
            timing.sync(device)
    finally:
        for h in handles:
            h.remove()
    prof.export_chrome_trace(str(path))
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    return prof.key_averages().table(sort_by=sort_by, row_limit=15)
