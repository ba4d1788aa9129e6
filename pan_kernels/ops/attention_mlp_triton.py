"""Triton kernels for the local-context attention MLP (ops `progressive_attention` and `attention_scores`).

Forward, one kernel: an implicit GEMM on `tl.dot` gathers the k x k neighbourhood of each pixel straight
from `x` (any strides, zero padding), keeps the hidden activations h = relu(W1 * F + q + b1) on chip, reduces
them with w2 to the score s, and (GATE) writes alpha = sigmoid(s) and out = x * alpha.

Backward (recompute policy, design D3 of docs/design.md, Backward designs): kernel 1 recomputes h and writes
g_pre = dL/d(pre) plus per-block partials of dquery_bias, dw2, db2; kernel 2 is the weight-gradient GEMM
dW1 = sum_n x_shift^T g_pre (split over n = (b, pixel)); kernel 3 is the data-gradient GEMM
dx = sum_tap g_pre_shift W1_tap (+ g_out * alpha).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pan_kernels.ops import _launch
from pan_kernels.ops._triton_utils import mma

# ----------------------------------------------------------------------------------------------- kernels


@triton.jit
def _pixel_offset(o_p, o_i, o_j, sh, sw, DENSE: tl.constexpr):
    """Memory offset of pixels o_p = o_i * W + o_j. DENSE (sh == W * sw, true for NCHW, channels_last and a
    column-strided view) writes it as o_p * sw, which lets the compiler see contiguity along pixels when sw == 1."""
    if DENSE:
        return o_p * sw
    else:
        return o_i * sh + o_j * sw


@triton.jit
def _preact_tile(
    x_ptr, w_ptr, qb_ptr, b1_ptr, i_b, o_p, o_i, o_j, m_p, o_h, m_h,
    C, H, W, HD, sxb, sxc, sxh, sxw,
    K: tl.constexpr, HAS_B1: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_HD: tl.constexpr, PRECISION: tl.constexpr,
):
    """pre[p, h] = sum_{tap, c} x[b, c, i_p + dy, j_p + dx] W1p[tap, c, h] + query_bias[b, h] (+ b1[h]), fp32;
    zero padding outside the image. X_DENSE (sxh == W * sxw): pixel offsets are (p + dy * W + dx) * sxw, so the
    compiler sees that consecutive pixels are contiguous on NCHW inputs (sxw == 1) and runs the lanes along them."""
    acc = tl.zeros((BLOCK_P, BLOCK_HD), dtype=tl.float32)
    x_base = x_ptr + i_b.to(tl.int64) * sxb
    for tap in range(K * K):
        ii = o_i + (tap // K - K // 2)
        jj = o_j + (tap % K - K // 2)
        m_in = m_p & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
        if X_DENSE:
            o_pix = (o_p + ((tap // K - K // 2) * W + (tap % K - K // 2))) * sxw
        else:
            o_pix = ii * sxh + jj * sxw
        for c0 in range(0, C, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m_c = o_c < C
            b_x = tl.load(x_base + o_pix[:, None] + o_c[None, :] * sxc, mask=m_in[:, None] & m_c[None, :], other=0.0)
            b_w = tl.load(
                w_ptr + (tap * C + o_c[:, None]) * HD + o_h[None, :], mask=m_c[:, None] & m_h[None, :], other=0.0
            )
            acc = mma(b_x, b_w, acc, PRECISION)
    b_bias = tl.load(qb_ptr + i_b * HD + o_h, mask=m_h, other=0.0).to(tl.float32)
    if HAS_B1:
        b_bias += tl.load(b1_ptr + o_h, mask=m_h, other=0.0).to(tl.float32)
    return acc + b_bias[None, :]


@triton.jit
def _attention_mlp_fwd_kernel(
    x_ptr, qb_ptr, w_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, s_ptr,
    C, H, W, HD,
    sxb, sxc, sxh, sxw, sob, soc, soh, sow,
    K: tl.constexpr, HAS_B1: tl.constexpr, HAS_B2: tl.constexpr, GATE: tl.constexpr,
    X_DENSE: tl.constexpr, O_DENSE: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HD: tl.constexpr, PRECISION: tl.constexpr,
):
    """s = w2 . relu(W1 * F + q + b1) + b2; GATE: s_ptr <- sigmoid(s), out <- x * sigmoid(s); else s_ptr <- s."""
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < H * W
    o_i, o_j = o_p // W, o_p % W
    b_s = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for h0 in range(0, HD, BLOCK_HD):
        o_h = h0 + tl.arange(0, BLOCK_HD)
        m_h = o_h < HD
        pre = _preact_tile(x_ptr, w_ptr, qb_ptr, b1_ptr, i_b, o_p, o_i, o_j, m_p, o_h, m_h, C, H, W, HD,
                           sxb, sxc, sxh, sxw, K, HAS_B1, X_DENSE, BLOCK_P, BLOCK_C, BLOCK_HD, PRECISION)
        hid = tl.maximum(pre, 0.0, propagate_nan=tl.PropagateNan.ALL)
        b_w2 = tl.load(w2_ptr + o_h, mask=m_h, other=0.0).to(tl.float32)
        b_s += tl.sum(hid * b_w2[None, :], axis=1)
    if HAS_B2:
        b_s += tl.load(b2_ptr).to(tl.float32)
    if GATE:
        b_s = tl.sigmoid(b_s)
        x_base = x_ptr + i_b.to(tl.int64) * sxb + _pixel_offset(o_p, o_i, o_j, sxh, sxw, X_DENSE)
        out_base = out_ptr + i_b.to(tl.int64) * sob + _pixel_offset(o_p, o_i, o_j, soh, sow, O_DENSE)
        for c0 in range(0, C, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m = m_p[:, None] & (o_c < C)[None, :]
            b_x = tl.load(x_base[:, None] + o_c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
            tl.store(out_base[:, None] + o_c[None, :] * soc, (b_x * b_s[:, None]).to(out_ptr.dtype.element_ty), mask=m)
    tl.store(s_ptr + i_b * H * W + o_p, b_s.to(s_ptr.dtype.element_ty), mask=m_p)


@triton.jit
def _attention_mlp_bwd_pre_kernel(
    x_ptr, qb_ptr, w_ptr, b1_ptr, w2_ptr, go_ptr, gs_ptr, a_ptr,
    dpre_ptr, dqb_ptr, dw2_ptr, db2_ptr,
    C, H, W, HD, NUM_PB,
    sxb, sxc, sxh, sxw, sgb, sgc, sgh, sgw,
    K: tl.constexpr, HAS_B1: tl.constexpr, GATE: tl.constexpr, X_DENSE: tl.constexpr, G_DENSE: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HD: tl.constexpr, PRECISION: tl.constexpr,
):
    """g_s = (sum_c g_out x + g_alpha) alpha (1 - alpha) (GATE) or g_s (scores); g_pre = g_s w2 [pre > 0].

    Writes g_pre [B, HW, HD] and per-(b, pixel-block) partials of dquery_bias, dw2 = sum g_s h and db2 = sum g_s.
    """
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < H * W
    o_i, o_j = o_p // W, o_p % W
    b_gs = tl.load(gs_ptr + i_b * H * W + o_p, mask=m_p, other=0.0).to(tl.float32)
    if GATE:
        x_base = x_ptr + i_b.to(tl.int64) * sxb + _pixel_offset(o_p, o_i, o_j, sxh, sxw, X_DENSE)
        go_base = go_ptr + i_b.to(tl.int64) * sgb + _pixel_offset(o_p, o_i, o_j, sgh, sgw, G_DENSE)
        for c0 in range(0, C, BLOCK_C):
            o_c = c0 + tl.arange(0, BLOCK_C)
            m = m_p[:, None] & (o_c < C)[None, :]
            b_x = tl.load(x_base[:, None] + o_c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
            b_go = tl.load(go_base[:, None] + o_c[None, :] * sgc, mask=m, other=0.0).to(tl.float32)
            b_gs += tl.sum(b_x * b_go, axis=1)
        b_a = tl.load(a_ptr + i_b * H * W + o_p, mask=m_p, other=0.0).to(tl.float32)
        b_gs = b_gs * b_a * (1.0 - b_a)
    b_gs = tl.where(m_p, b_gs, 0.0)
    i_part = i_b * NUM_PB + i_p
    tl.store(db2_ptr + i_part, tl.sum(b_gs, axis=0))
    for h0 in range(0, HD, BLOCK_HD):
        o_h = h0 + tl.arange(0, BLOCK_HD)
        m_h = o_h < HD
        pre = _preact_tile(x_ptr, w_ptr, qb_ptr, b1_ptr, i_b, o_p, o_i, o_j, m_p, o_h, m_h, C, H, W, HD,
                           sxb, sxc, sxh, sxw, K, HAS_B1, X_DENSE, BLOCK_P, BLOCK_C, BLOCK_HD, PRECISION)
        hid = tl.maximum(pre, 0.0, propagate_nan=tl.PropagateNan.ALL)
        tl.store(dw2_ptr + i_part * HD + o_h, tl.sum(b_gs[:, None] * hid, axis=0), mask=m_h)
        b_w2 = tl.load(w2_ptr + o_h, mask=m_h, other=0.0).to(tl.float32)
        g_pre = tl.where(pre > 0.0, b_gs[:, None] * b_w2[None, :], 0.0)
        tl.store(dqb_ptr + i_part * HD + o_h, tl.sum(g_pre, axis=0), mask=m_h)
        o_row = (i_b * H * W + o_p).to(tl.int64) * HD
        tl.store(dpre_ptr + o_row[:, None] + o_h[None, :], g_pre.to(dpre_ptr.dtype.element_ty),
                 mask=m_p[:, None] & m_h[None, :])


@triton.jit
def _attention_mlp_bwd_weight_kernel(
    x_ptr, dpre_ptr, dw_ptr,
    NUM_T, NUM_PB, T_PER_SPLIT, C, H, W, HD,
    sxb, sxc, sxh, sxw,
    K: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HD: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """dW1p_partial[split, m, h] = sum_{n in split} x[b_n, c_m, i_n + dy_m, j_n + dx_m] g_pre[n, h].

    An implicit-GEMM weight gradient: rows m = tap * C + c run over all K*K*C weights (BLOCK_M of them per program,
    so each program reads x for several taps at once, not once per tap), columns over Hd, reduction over
    n = (b, pixel) in blocks of BLOCK_N pixels of one image (t = b * NUM_PB + pixel block), split across programs.
    Keeping a block inside one image lets the compiler see that its pixels are contiguous on NCHW inputs."""
    i_m, i_h, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_m = o_m < K * K * C
    tap, o_c = o_m // C, o_m % C
    dy, dx = tap // K - K // 2, tap % K - K // 2
    o_h = i_h * BLOCK_HD + tl.arange(0, BLOCK_HD)
    m_h = o_h < HD
    HW = H * W
    acc = tl.zeros((BLOCK_M, BLOCK_HD), dtype=tl.float32)
    t_start = i_s * T_PER_SPLIT
    t_end = tl.minimum(t_start + T_PER_SPLIT, NUM_T)
    for t in range(t_start, t_end):
        o_b = t // NUM_PB
        o_p = (t % NUM_PB) * BLOCK_N + tl.arange(0, BLOCK_N)
        m_n = o_p < HW
        ii = (o_p // W)[None, :] + dy[:, None]
        jj = (o_p % W)[None, :] + dx[:, None]
        m_x = m_m[:, None] & m_n[None, :] & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
        x_b = x_ptr + o_b.to(tl.int64) * sxb
        if X_DENSE:
            b_xt = tl.load(x_b + o_c[:, None] * sxc + (o_p[None, :] + (dy * W + dx)[:, None]) * sxw, mask=m_x,
                           other=0.0)
        else:
            b_xt = tl.load(x_b + o_c[:, None] * sxc + ii * sxh + jj * sxw, mask=m_x, other=0.0)
        b_g = tl.load(dpre_ptr + (o_b * HW + o_p).to(tl.int64)[:, None] * HD + o_h[None, :],
                      mask=m_n[:, None] & m_h[None, :], other=0.0)
        acc = mma(b_xt, b_g, acc, PRECISION)
    o_out = (i_s * K * K * C + o_m[:, None]).to(tl.int64) * HD + o_h[None, :]
    tl.store(dw_ptr + o_out, acc, mask=m_m[:, None] & m_h[None, :])


@triton.jit
def _attention_mlp_bwd_input_kernel(
    dpre_ptr, w_ptr, go_ptr, a_ptr, dx_ptr,
    C, H, W, HD,
    sgb, sgc, sgh, sgw, sdb, sdc, sdh, sdw,
    K: tl.constexpr, GATE: tl.constexpr, G_DENSE: tl.constexpr, D_DENSE: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HD: tl.constexpr, PRECISION: tl.constexpr,
):
    """dx[b, c, q] = sum_{tap, h} g_pre[b, q - off_tap, h] W1p[tap, c, h]  (+ g_out[b, c, q] alpha[b, q] if GATE)."""
    i_p, i_c, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < H * W
    o_i, o_j = o_p // W, o_p % W
    o_c = i_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_c = o_c < C
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for tap in range(K * K):
        ii = o_i - (tap // K - K // 2)
        jj = o_j - (tap % K - K // 2)
        m_in = m_p & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
        o_row = (i_b * H * W + ii * W + jj).to(tl.int64) * HD
        for h0 in range(0, HD, BLOCK_HD):
            o_h = h0 + tl.arange(0, BLOCK_HD)
            m_h = o_h < HD
            b_g = tl.load(dpre_ptr + o_row[:, None] + o_h[None, :], mask=m_in[:, None] & m_h[None, :], other=0.0)
            b_wt = tl.load(w_ptr + (tap * C + o_c[None, :]) * HD + o_h[:, None], mask=m_h[:, None] & m_c[None, :],
                           other=0.0)
            acc = mma(b_g, b_wt, acc, PRECISION)
    m = m_p[:, None] & m_c[None, :]
    if GATE:
        o_go = i_b.to(tl.int64) * sgb + _pixel_offset(o_p, o_i, o_j, sgh, sgw, G_DENSE)[:, None] + o_c[None, :] * sgc
        b_go = tl.load(go_ptr + o_go, mask=m, other=0.0).to(tl.float32)
        b_a = tl.load(a_ptr + i_b * H * W + o_p, mask=m_p, other=0.0).to(tl.float32)
        acc += b_go * b_a[:, None]
    o_dx = i_b.to(tl.int64) * sdb + _pixel_offset(o_p, o_i, o_j, sdh, sdw, D_DENSE)[:, None] + o_c[None, :] * sdc
    tl.store(dx_ptr + o_dx, acc.to(dx_ptr.dtype.element_ty), mask=m)


# --------------------------------------------------------------------------------------------- launchers


def _blocks(C: int, Hd: int, gpu: bool) -> tuple[int, int, int]:
    """(BLOCK_P, BLOCK_C, BLOCK_HD); tl.dot needs every dimension >= 16."""
    block_c = min(max(16, triton.next_power_of_2(C)), 64)
    block_hd = min(max(16, triton.next_power_of_2(Hd)), 64)
    block_p = 64 if gpu else 16
    return block_p, block_c, block_hd


def _dense(t: Tensor) -> bool:
    """Whether t [B, C, H, W]'s pixels are evenly spaced (stride_h == W * stride_w): NCHW, channels_last, a column
    view; the kernels then address pixel p as p * stride_w (see _pixel_offset)."""
    return t.shape[2] <= 1 or t.stride(2) == t.shape[3] * t.stride(3)


def _num_warps(block_c: int, block_hd: int, gpu: bool) -> int:
    """8 warps for the wide VG tiles (64 x 64 operand tiles): with 4, the fp32 accumulators and the pipelined x
    tiles spill at 255 registers (`pan bench --preflight`, VG-14); 4 elsewhere."""
    return 8 if gpu and block_c >= 64 and block_hd >= 64 else 4


def _weight_blocks(rows: int, Hd: int, block_hd: int, gpu: bool) -> tuple[int, int]:
    """(BLOCK_N, BLOCK_M) of the weight-gradient GEMM. GPU: BLOCK_M 128 only where the hidden tile is narrow
    enough that the fp32 accumulator plus the staged x / g_pre tiles stay under 255 registers without spilling
    (`pan bench --preflight` checks it), else 64."""
    if not gpu:
        return 32, min(32, max(16, triton.next_power_of_2(rows)))
    block_m = WEIGHT_BLOCK_M_NARROW if block_hd <= 32 else WEIGHT_BLOCK_M_WIDE
    return 64, min(block_m, max(16, triton.next_power_of_2(rows)))


WEIGHT_BLOCK_M_NARROW = 64
WEIGHT_BLOCK_M_WIDE = 128


def _pack_weight1(weight1: Tensor) -> Tensor:
    """[Hd, C, k, k] -> [k*k, C, Hd] contiguous: row (tap, c) holds the Hd weights of one GEMM K-index."""
    Hd, C, k, _ = weight1.shape
    return weight1.permute(2, 3, 1, 0).reshape(k * k, C, Hd).contiguous()


def attention_mlp_fwd(
    x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None, weight2: Tensor, bias2: Tensor | None,
    gate: bool,
) -> tuple[Tensor, Tensor]:
    """Returns (out, alpha) when `gate`, else (empty, s). out has x's strides; alpha/s are [B, H, W] contiguous."""
    B, C, H, W = x.shape
    Hd, k = weight1.shape[0], weight1.shape[-1]
    out = torch.empty_like(x) if gate else x.new_empty(0)
    s = x.new_empty((B, H, W))
    if B == 0:
        return out, s
    qb = query_bias.contiguous()
    w2 = weight2.contiguous()
    block_p, block_c, block_hd = _blocks(C, Hd, _launch.on_gpu(x))
    so = out.stride() if gate else (0, 0, 0, 0)
    grid = (triton.cdiv(H * W, block_p), B)
    _attention_mlp_fwd_kernel[grid](
        x, qb, _pack_weight1(weight1), bias1.contiguous() if bias1 is not None else qb, w2,
        bias2 if bias2 is not None else qb,
        out, s, C, H, W, Hd, *x.stride(), *so,
        K=k, HAS_B1=bias1 is not None, HAS_B2=bias2 is not None, GATE=gate, X_DENSE=_dense(x),
        O_DENSE=_dense(out) if gate else False, BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_HD=block_hd,
        PRECISION=_launch.dot_precision(x), num_warps=_num_warps(block_c, block_hd, _launch.on_gpu(x)),
    )
    return out, s


def attention_mlp_bwd(
    grad_out: Tensor | None, grad_s: Tensor, x: Tensor, query_bias: Tensor, weight1: Tensor, bias1: Tensor | None,
    weight2: Tensor, alpha: Tensor | None, gate: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dquery_bias, dweight1, dbias1, dweight2, dbias2) in x's dtype.

    gate: grad_out [B,C,H,W] and grad_s = dL/dalpha [B,H,W], alpha saved from forward;
    scores: grad_s = dL/ds, grad_out and alpha unused.
    """
    B, C, H, W = x.shape
    Hd, k = weight1.shape[0], weight1.shape[-1]
    dx = torch.empty_like(x)
    if B == 0:
        zeros = [torch.zeros_like(t) for t in (query_bias, weight1, weight2)]
        return dx, zeros[0], zeros[1], x.new_zeros(Hd), zeros[2], x.new_zeros(())
    HW, N = H * W, B * H * W
    block_p, block_c, block_hd = _blocks(C, Hd, _launch.on_gpu(x))
    precision = _launch.dot_precision(x)
    w1p = _pack_weight1(weight1)
    qb, w2 = query_bias.contiguous(), weight2.contiguous()
    gs = grad_s.contiguous()
    go = grad_out if gate else gs
    sg = grad_out.stride() if gate else (0, 0, 0, 0)
    a = alpha.contiguous() if gate else gs
    num_pb = triton.cdiv(HW, block_p)
    dpre_dtype = torch.float32 if x.dtype == torch.float32 else x.dtype
    dpre = torch.empty((N, Hd), device=x.device, dtype=dpre_dtype)
    dqb_part = torch.empty((B, num_pb, Hd), device=x.device, dtype=torch.float32)
    dw2_part = torch.empty((B, num_pb, Hd), device=x.device, dtype=torch.float32)
    db2_part = torch.empty((B, num_pb), device=x.device, dtype=torch.float32)
    _attention_mlp_bwd_pre_kernel[(num_pb, B)](
        x, qb, w1p, bias1.contiguous() if bias1 is not None else qb, w2, go, gs, a,
        dpre, dqb_part, dw2_part, db2_part,
        C, H, W, Hd, num_pb, *x.stride(), *sg,
        K=k, HAS_B1=bias1 is not None, GATE=gate, X_DENSE=_dense(x), G_DENSE=gate and _dense(grad_out),
        BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_HD=block_hd, PRECISION=precision,
        num_warps=_num_warps(block_c, block_hd, _launch.on_gpu(x)),
    )

    block_n, block_m = _weight_blocks(k * k * C, Hd, block_hd, _launch.on_gpu(x))
    num_pb_n = triton.cdiv(HW, block_n)
    num_t = B * num_pb_n
    tiles = triton.cdiv(k * k * C, block_m) * triton.cdiv(Hd, block_hd)
    split = max(1, min(triton.cdiv(num_t, 4), triton.cdiv(_launch.num_programs_target(x), tiles)))
    t_per_split = triton.cdiv(num_t, split)
    split = triton.cdiv(num_t, t_per_split)
    dw_part = torch.empty((split, k * k, C, Hd), device=x.device, dtype=torch.float32)
    _attention_mlp_bwd_weight_kernel[(triton.cdiv(k * k * C, block_m), triton.cdiv(Hd, block_hd), split)](
        x, dpre, dw_part, num_t, num_pb_n, t_per_split, C, H, W, Hd, *x.stride(),
        K=k, X_DENSE=_dense(x), BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_HD=block_hd, PRECISION=precision,
    )

    _attention_mlp_bwd_input_kernel[(num_pb, triton.cdiv(C, block_c), B)](
        dpre, w1p, go, a, dx, C, H, W, Hd, *sg, *dx.stride(),
        K=k, GATE=gate, G_DENSE=gate and _dense(grad_out), D_DENSE=_dense(dx),
        BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_HD=block_hd, PRECISION=precision,
    )
    dqb = dqb_part.sum(1)
    dw1 = dw_part.sum(0).reshape(k, k, C, Hd).permute(3, 2, 0, 1)
    dtype = x.dtype
    return (
        dx, dqb.to(dtype), dw1.to(dtype).contiguous(), dqb.sum(0).to(dtype), dw2_part.sum((0, 1)).to(dtype),
        db2_part.sum().to(dtype),
    )
