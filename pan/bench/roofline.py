"""Bytes and FLOPs of every op, counted in one place, and the device's measured ceilings (the roofline).

Bytes are the compulsory traffic of a fully fused kernel: every input read once and every output written once
(docs/design.md, Floors). The same count is used for every provider, so "GB/s" is the effective bandwidth a provider
achieves against the minimum it must move; an unfused provider that moves more still gets the same denominator.
FLOPs count multiply-adds as 2, the element-wise epilogues as listed below; transcendentals (exp, sigmoid, log)
are not counted.

Notation: N = B*H*W pixels, K = C*k*k (the implicit-GEMM depth of the local-context conv), es = element size.

progressive_attention (op A), gate=True; attention_scores is the same MLP with gate=False:
  fwd  bytes = x (read) + out (write, gate only) + alpha/s (write) + params (read)
       params = query_bias [B,Hd] + weight1 [Hd,C,k,k] + bias1 [Hd] + weight2 [Hd] + bias2 []
       flops = 2*N*K*Hd (conv GEMM) + 4*N*Hd (+q+b1, relu, *w2, sum) + N*C (out = x * alpha, gate only)
  bwd  bytes = x (read) + grad_s/grad_alpha (read) + dx (write) + params (read) + param grads (write)
               + gate: grad_out (read) + alpha (read)  [docs/design.md, Backward designs: floor 3 ||x|| with the gate]
               + h_policy "store": h [N,Hd] in bf16 (read)
       flops = 2 * 2*N*K*Hd (dgrad + wgrad GEMMs) + 4*N*Hd (through w2 and relu: dpre, dw2, dquery_bias)
               + h_policy "recompute": 2*N*K*Hd + 4*N*Hd (the forward recomputed)
               + gate: 3*N*C (dalpha = sum_c g*x, and dx += g*alpha)
  fwd+bwd = fwd + bwd, plus h written (bf16) by the forward when h_policy is "store".
hard_attention_marginal (op B; the [B,HW,A] logits are never stored, so the backward recomputes them):
  fwd  bytes = x + scores + cls_weight [A,C] + cls_bias [A] (read) + log_p [B,A] + alpha (write)
       flops = 2*N*A*C + 5*N*A (bias, log_softmax over classes, + log alpha, logsumexp over space)
  bwd  bytes = x + grad_log_p + grad_alpha + alpha + cls_weight + cls_bias (read) + dx + dscores + dWc + dbc (write)
       flops = 3 * 2*N*A*C (recompute, dgrad, wgrad) + 5*N*A
hard_attention_marginal_multilabel (the [B,HW,A] logits never stored; backward recomputes them in each of three
kernels: scores, dx per output-channel tile, dWc):
  fwd  bytes = x + scores + cls_weight + cls_bias (read) + log_p + log_1mp [B,A] + alpha (write)
       flops = 2*N*A*C + 6*N*A (bias, two log-sigmoids, + log alpha, two logsumexps over space)
  bwd  bytes = x + grad_log_p + grad_log_1mp + grad_alpha + alpha + cls_weight + cls_bias (read)
               + dx + dscores + dWc + dbc (write)
       flops = 3 * 2*N*A*C (dgrad, wgrad and one recompute: the floor; the kernels recompute more) + 8*N*A
soft_attention_pool:
  fwd  bytes = x + scores (read) + f_att [B,C] + alpha (write);  flops = 2*N*C + 4*N (softmax)
  bwd  bytes = x + grad_f_att + grad_alpha + alpha (read) + dx + dscores (write);  flops = 3*N*C + 4*N

The device ceilings are measured once per run (`measure_roofline`): a large device-to-device copy (bytes read +
written) and a large square matmul per dtype (fp32 follows the run's TF32 setting). The floor of a case is
max(bytes / copy bandwidth, flops / matmul rate).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

H_POLICIES = ("recompute", "store")


@dataclass(frozen=True)
class Cost:
    """Compulsory bytes moved and FLOPs done by one call."""

    bytes: int
    flops: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.bytes + other.bytes, self.flops + other.flops)


def attention_mlp_cost(B: int, C: int, H: int, W: int, Hd: int, k: int, mode: str, es: int, *, gate: bool,
                       h_policy: str = "recompute") -> Cost:
    """Op A (gate=True, progressive_attention) or attention_scores (gate=False); see the module docstring."""
    if h_policy not in H_POLICIES:
        raise ValueError(f"h_policy must be one of {H_POLICIES}, got {h_policy!r}")
    N, K = B * H * W, C * k * k
    x = B * C * H * W * es
    amap = N * es
    params = (B * Hd + Hd * K + Hd + Hd + 1) * es
    gemm = 2 * N * K * Hd
    epilogue = 4 * N * Hd
    h_bytes = N * Hd * 2 if h_policy == "store" else 0  # h kept in bf16 (docs/design.md, Backward designs, D4)

    fwd = Cost(x + (x if gate else 0) + amap + params, gemm + epilogue + (N * C if gate else 0))
    bwd_bytes = x + amap + x + 2 * params + ((x + amap) if gate else 0) + h_bytes
    bwd_flops = 2 * gemm + epilogue + ((gemm + epilogue) if h_policy == "recompute" else 0) + (3 * N * C if gate else 0)
    bwd = Cost(bwd_bytes, bwd_flops)
    return _by_mode(mode, fwd, bwd, Cost(h_bytes, 0))


def hard_attention_marginal_cost(B: int, C: int, H: int, W: int, A: int, mode: str, es: int) -> Cost:
    """Op B; see the module docstring."""
    N = B * H * W
    x = B * C * H * W * es
    params = (A * C + A) * es
    fwd = Cost(x + N * es + params + B * A * es + N * es, 2 * N * A * C + 5 * N * A)
    bwd = Cost(x + B * A * es + 2 * N * es + params + x + N * es + params, 3 * 2 * N * A * C + 5 * N * A)
    return _by_mode(mode, fwd, bwd)


def hard_attention_marginal_multilabel_cost(B: int, C: int, H: int, W: int, A: int, mode: str, es: int) -> Cost:
    """The multi-label marginal; see the module docstring."""
    N = B * H * W
    x = B * C * H * W * es
    params = (A * C + A) * es
    fwd = Cost(x + N * es + params + 2 * B * A * es + N * es, 2 * N * A * C + 6 * N * A)
    bwd = Cost(x + 2 * B * A * es + 2 * N * es + params + x + N * es + params, 3 * 2 * N * A * C + 8 * N * A)
    return _by_mode(mode, fwd, bwd)


def soft_attention_pool_cost(B: int, C: int, H: int, W: int, mode: str, es: int) -> Cost:
    """Soft attention pooling; see the module docstring."""
    N = B * H * W
    x = B * C * H * W * es
    fwd = Cost(x + N * es + B * C * es + N * es, 2 * N * C + 4 * N)
    bwd = Cost(x + B * C * es + 2 * N * es + x + N * es, 3 * N * C + 4 * N)
    return _by_mode(mode, fwd, bwd)


def _by_mode(mode: str, fwd: Cost, bwd: Cost, saved: Cost = Cost(0, 0)) -> Cost:
    if mode == "fwd":
        return fwd
    if mode == "bwd":
        return bwd
    if mode == "fwd+bwd":
        return fwd + saved + bwd
    raise ValueError(f"mode must be 'fwd', 'bwd' or 'fwd+bwd', got {mode!r}")


def op_cost(op: str, shape, mode: str, dtype: torch.dtype) -> Cost:
    """Cost of `op` (a registry op name) at a registry `Shape` in `mode` and `dtype`: the one dispatch point."""
    es = torch.empty((), dtype=dtype).element_size()
    s = shape
    if op == "progressive_attention":
        return attention_mlp_cost(s.B, s.C, s.H, s.W, s.Hd, s.k, mode, es, gate=True, h_policy=s.h_policy)
    if op == "attention_scores":
        return attention_mlp_cost(s.B, s.C, s.H, s.W, s.Hd, s.k, mode, es, gate=False, h_policy=s.h_policy)
    if op == "hard_attention_marginal":
        return hard_attention_marginal_cost(s.B, s.C, s.H, s.W, s.A, mode, es)
    if op == "soft_attention_pool":
        return soft_attention_pool_cost(s.B, s.C, s.H, s.W, mode, es)
    if op == "hard_attention_marginal_multilabel":
        return hard_attention_marginal_multilabel_cost(s.B, s.C, s.H, s.W, s.A, mode, es)
    raise ValueError(f"no cost model for op {op!r}")


# ------------------------------------------------------------------------------------------ measured ceilings


@dataclass
class Roofline:
    """Measured ceilings of one device: copy bandwidth (GB/s, read + write) and dense matmul rate per dtype."""

    device: str
    copy_gbps: float
    matmul_tflops: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def floor_us(self, cost: Cost, dtype: torch.dtype) -> float | None:
        rate = self.matmul_tflops.get(dtype_name(dtype))
        if not self.copy_gbps or not rate:
            return None
        return max(cost.bytes / (self.copy_gbps * 1e9), cost.flops / (rate * 1e12)) * 1e6

    def to_json(self) -> dict:
        return asdict(self)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _time_ms(fn, device: torch.device) -> float:
    """Median milliseconds of fn (do_bench on a GPU, wall clock on the CPU)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))
    fn()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times)[len(times) // 2]


def _copy_ms(n: int, device: torch.device) -> float:
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    return _time_ms(lambda: dst.copy_(src), device)


def measure_roofline(device: torch.device, dtypes: list[torch.dtype]) -> Roofline:
    """Measure the copy bandwidth and the matmul rate of each dtype once (GPU: 1 GiB copy, 8192^3 matmul)."""
    gpu = device.type == "cuda"
    n_copy = (1 << 28) if gpu else (1 << 23)  # fp32 elements: 1 GiB on a GPU, 32 MiB on the CPU
    roof = Roofline(device=str(device), copy_gbps=2 * n_copy * 4 / (_copy_ms(n_copy, device) * 1e-3) / 1e9)
    n = 8192 if gpu else 1024
    for dtype in dtypes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        ms = _time_ms(lambda a=a, b=b: torch.mm(a, b), device)
        roof.matmul_tflops[dtype_name(dtype)] = 2 * n**3 / (ms * 1e-3) / 1e12
    if gpu and torch.float32 in dtypes:
        roof.notes["float32"] = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee fp32"
    if gpu:
        # docs/design.md, Performance model: the narrow Hd=32 GEMM of MREF-49 sets the practical compute floor there.
        a = torch.randn(614656, 288, device=device)
        b = torch.randn(288, 32, device=device)
        ms = _time_ms(lambda: torch.mm(a, b), device)
        roof.notes["narrow_mm_614656x288x32_fp32_tflops"] = f"{2 * 614656 * 288 * 32 / (ms * 1e-3) / 1e12:.1f}"
        del a, b
    return roof
