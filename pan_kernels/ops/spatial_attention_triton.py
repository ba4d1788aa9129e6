"""Triton kernels for the last attention layer: softmax over space + classifier (ops `hard_attention_marginal`,
`soft_attention_pool`).

hard_attention_marginal forward, one kernel: per (sample, pixel split) it computes log_softmax_ij(s), the
per-pixel logits z = Wc x_ij + bc tile by tile on `tl.dot` (never written to memory), their logsumexp over
classes, and a streaming logsumexp over its pixels of log alpha_ij + log_softmax_a(z_ij); the pixel splits are
merged by a [B, splits, A] logsumexp. Backward (docs/design.md, Backward designs): one kernel recomputes z and forms
u_ij = sum_a G_a r_ija, grad_s and grad_z = G_a r_ija - p(a|ij) u_ij; dx = grad_z Wc and dWc = grad_z^T x are
two GEMMs on that workspace.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pan_kernels.ops import _launch
from pan_kernels.ops._triton_utils import mma


@triton.jit
def _pixel_offset(o_p, W, sh, sw, DENSE: tl.constexpr):
    """Memory offset of pixels o_p (row-major over H x W). DENSE (sh == W * sw: NCHW, channels_last, a column view)
    writes it as o_p * sw, so the compiler sees contiguity along pixels on NCHW inputs (sw == 1)."""
    if DENSE:
        return o_p * sw
    else:
        return (o_p // W) * sh + (o_p % W) * sw


@triton.jit
def _logits_tile(
    x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc,
    HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_A: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """z[p, a] = sum_c x[p, c] Wc[a, c] (+ bc[a]); x_base [BLOCK_P] points at channel 0 of each pixel."""
    acc = tl.zeros((BLOCK_P, BLOCK_A), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < C
        b_x = tl.load(x_base[:, None] + o_c[None, :] * sxc, mask=m_p[:, None] & m_c[None, :], other=0.0)
        b_w = tl.load(wc_ptr + o_a[None, :] * C + o_c[:, None], mask=m_c[:, None] & m_a[None, :], other=0.0)
        acc = mma(b_x, b_w, acc, PRECISION)
    if HAS_BIAS:
        acc += tl.load(bc_ptr + o_a, mask=m_a, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _lse_columns(m, acc, v):
    """One streaming log-sum-exp step over the rows of v [P, A] into per-column running (max m, sum acc)."""
    m_new = tl.maximum(m, tl.max(v, axis=0))
    # a column whose running max is still -inf has no mass yet: keep it at exactly 0 (no inf - inf)
    safe = tl.where(m_new == -float("inf"), 0.0, m_new)
    return m_new, acc * tl.exp(m - safe) + tl.sum(tl.exp(v - safe[None, :]), axis=0)


@triton.jit
def _spatial_logsumexp(s_ptr, HW, BLOCK_P: tl.constexpr):
    """logsumexp over the HW scores at s_ptr, streamed in BLOCK_P chunks, one running (max, sum) per lane (fp32)."""
    m = tl.full((BLOCK_P,), -float("inf"), dtype=tl.float32)
    acc = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        b_s = tl.load(s_ptr + o_p, mask=o_p < HW, other=-float("inf")).to(tl.float32)
        m_new = tl.maximum(m, b_s)
        # a lane with no finite score yet keeps acc = 0 (no inf - inf)
        safe = tl.where(m_new == -float("inf"), 0.0, m_new)
        acc = acc * tl.exp(m - safe) + tl.exp(b_s - safe)
        m = m_new
    m_all = tl.max(m, axis=0)
    safe_all = tl.where(m_all == -float("inf"), 0.0, m_all)
    return safe_all + tl.log(tl.sum(acc * tl.exp(m - safe_all), axis=0))


@triton.jit
def _split_softmax(s_ptr, alpha_ptr, stats_ptr, i_b, i_s, HW, n_stats, P_PER_SPLIT, BLOCK_P: tl.constexpr):
    """Pixels [p_start, p_end) of split i_s of sample i_b: writes alpha = softmax_ij(s) (over all HW scores) and
    stats[b, :HW] = log alpha there; returns (logsumexp_ij s, p_start, p_end)."""
    lse_s = _spatial_logsumexp(s_ptr + i_b * HW, HW, BLOCK_P)
    p_start = i_s * P_PER_SPLIT
    p_end = tl.minimum(p_start + P_PER_SPLIT, HW)
    for p0 in range(p_start, p_end, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < p_end
        log_alpha = tl.load(s_ptr + i_b * HW + o_p, mask=m_p, other=0.0).to(tl.float32) - lse_s
        tl.store(alpha_ptr + i_b * HW + o_p, tl.exp(log_alpha).to(alpha_ptr.dtype.element_ty), mask=m_p)
        tl.store(stats_ptr + i_b * n_stats + o_p, log_alpha, mask=m_p)
    return lse_s, p_start, p_end


@triton.jit
def _hard_marginal_fwd_kernel(
    x_ptr, s_ptr, wc_ptr, bc_ptr, alpha_ptr, stats_ptr, part_ptr,
    C, HW, W, A, P_PER_SPLIT, NUM_SPLITS,
    sxb, sxc, sxh, sxw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_A: tl.constexpr, PRECISION: tl.constexpr,
):
    """part[b, split, a] = logsumexp_{ij in split}( log alpha_ij + z_ija - logsumexp_a' z_ija' ).

    Also writes alpha = softmax_ij(s) and stats[b] = [log alpha (HW) | logsumexp_a z (HW) | . (A)].
    """
    i_s, i_b = tl.program_id(0), tl.program_id(1)
    n_stats = 2 * HW + A
    _, p_start, p_end = _split_softmax(s_ptr, alpha_ptr, stats_ptr, i_b, i_s, HW, n_stats, P_PER_SPLIT, BLOCK_P)
    x_b = x_ptr + i_b.to(tl.int64) * sxb
    for p0 in range(p_start, p_end, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < p_end
        x_base = x_b + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
        m_z = tl.full((BLOCK_P,), -float("inf"), dtype=tl.float32)
        l_z = tl.zeros((BLOCK_P,), dtype=tl.float32)
        for a0 in range(0, A, BLOCK_A):
            o_a = a0 + tl.arange(0, BLOCK_A)
            m_a = o_a < A
            z = _logits_tile(x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A,
                             PRECISION)
            z = tl.where(m_a[None, :], z, -float("inf"))
            m_new = tl.maximum(m_z, tl.max(z, axis=1))
            l_z = l_z * tl.exp(m_z - m_new) + tl.sum(tl.exp(z - m_new[:, None]), axis=1)
            m_z = m_new
        tl.store(stats_ptr + i_b * n_stats + HW + o_p, m_z + tl.log(l_z), mask=m_p)
    tl.debug_barrier()
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        m_a = o_a < A
        m_acc = tl.full((BLOCK_A,), -float("inf"), dtype=tl.float32)
        l_acc = tl.zeros((BLOCK_A,), dtype=tl.float32)
        for p0 in range(p_start, p_end, BLOCK_P):
            o_p = p0 + tl.arange(0, BLOCK_P)
            m_p = o_p < p_end
            x_base = x_b + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
            z = _logits_tile(x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A,
                             PRECISION)
            log_alpha = tl.load(stats_ptr + i_b * n_stats + o_p, mask=m_p, other=0.0)
            lse_z = tl.load(stats_ptr + i_b * n_stats + HW + o_p, mask=m_p, other=0.0)
            v = tl.where(m_p[:, None], z + (log_alpha - lse_z)[:, None], -float("inf"))
            m_acc, l_acc = _lse_columns(m_acc, l_acc, v)
        tl.store(part_ptr + (i_b * NUM_SPLITS + i_s) * A + o_a, m_acc + tl.log(l_acc), mask=m_a)


@triton.jit
def _class_tile(
    x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, i_b, m_p, o_a, m_a, C, HW, A, sxc,
    HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_A: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """(z [BLOCK_P, BLOCK_A], log p(a) [BLOCK_A] saved by the forward, G_a [BLOCK_A]) for one class tile."""
    z = _logits_tile(x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
    log_p = tl.load(stats_ptr + i_b * (2 * HW + A) + 2 * HW + o_a, mask=m_a, other=0.0)
    b_g = tl.load(g_ptr + i_b * A + o_a, mask=m_a, other=0.0)
    return z, log_p, b_g


@triton.jit
def _hard_marginal_bwd_kernel(
    x_ptr, wc_ptr, bc_ptr, stats_ptr, g_ptr, gsum_ptr, ga_ptr, gadot_ptr, ds_ptr, gz_ptr,
    C, HW, W, A,
    sxb, sxc, sxh, sxw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_A: tl.constexpr, PRECISION: tl.constexpr,
):
    """r_ija = alpha_ij p(a|ij) / p(a); u_ij = sum_a G_a r_ija;
    ds_ij = u_ij - alpha_ij sum_a G_a + alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl);
    grad_z[b, ij, a] = G_a r_ija - p(a|ij) u_ij (fp32 workspace)."""
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    n_stats = 2 * HW + A
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < HW
    log_alpha = tl.load(stats_ptr + i_b * n_stats + o_p, mask=m_p, other=-float("inf"))
    lse_z = tl.load(stats_ptr + i_b * n_stats + HW + o_p, mask=m_p, other=0.0)
    x_base = x_ptr + i_b.to(tl.int64) * sxb + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
    u = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        m_a = o_a < A
        z, log_p, b_g = _class_tile(x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, i_b, m_p, o_a, m_a, C, HW, A, sxc,
                                    HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
        r = tl.exp((log_alpha - lse_z)[:, None] + z - log_p[None, :])
        u += tl.sum(tl.where(m_a[None, :], b_g[None, :] * r, 0.0), axis=1)
    alpha = tl.exp(log_alpha)
    b_ga = tl.load(ga_ptr + i_b * HW + o_p, mask=m_p, other=0.0)
    ds = u - alpha * tl.load(gsum_ptr + i_b) + alpha * (b_ga - tl.load(gadot_ptr + i_b))
    tl.store(ds_ptr + i_b * HW + o_p, ds.to(ds_ptr.dtype.element_ty), mask=m_p)
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        m_a = o_a < A
        z, log_p, b_g = _class_tile(x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, i_b, m_p, o_a, m_a, C, HW, A, sxc,
                                    HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
        log_pz = z - lse_z[:, None]
        gz = b_g[None, :] * tl.exp(log_alpha[:, None] + log_pz - log_p[None, :]) - tl.exp(log_pz) * u[:, None]
        o_gz = (i_b * HW + o_p).to(tl.int64)[:, None] * A + o_a[None, :]
        tl.store(gz_ptr + o_gz, gz, mask=m_p[:, None] & m_a[None, :])


@triton.jit
def _soft_pool_fwd_kernel(
    x_ptr, s_ptr, f_ptr, alpha_ptr,
    C, HW, W, sxb, sxc, sxh, sxw,
    X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """f[b, c] = sum_ij softmax(s)_ij x[b, c, ij]; the first channel block also writes alpha."""
    i_c, i_b = tl.program_id(0), tl.program_id(1)
    o_c = i_c * BLOCK_C + tl.arange(0, BLOCK_C)
    m_c = o_c < C
    lse_s = _spatial_logsumexp(s_ptr + i_b * HW, HW, BLOCK_P)
    acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    x_b = x_ptr + i_b.to(tl.int64) * sxb
    for p0 in range(0, HW, BLOCK_P):
        o_p = p0 + tl.arange(0, BLOCK_P)
        m_p = o_p < HW
        alpha = tl.exp(tl.load(s_ptr + i_b * HW + o_p, mask=m_p, other=-float("inf")).to(tl.float32) - lse_s)
        if i_c == 0:
            tl.store(alpha_ptr + i_b * HW + o_p, alpha.to(alpha_ptr.dtype.element_ty), mask=m_p)
        o_pix = _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
        b_x = tl.load(x_b + o_c[:, None] * sxc + o_pix[None, :], mask=m_c[:, None] & m_p[None, :], other=0.0)
        b_x = b_x.to(tl.float32)
        acc += tl.sum(b_x * alpha[None, :], axis=1)
    tl.store(f_ptr + i_b * C + o_c, acc.to(f_ptr.dtype.element_ty), mask=m_c)


@triton.jit
def _soft_pool_bwd_pixel_kernel(
    x_ptr, alpha_ptr, gf_ptr, ga_ptr, dx_ptr, work_ptr, part_ptr,
    C, HW, W, NUM_PB, sxb, sxc, sxh, sxw, sdb, sdc, sdh, sdw,
    X_DENSE: tl.constexpr, D_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Per pixel block of one sample: g_alpha_ij = ga_ij + sum_c G_c x_cij (work), dx_cij = alpha_ij G_c, and the
    block's partial of sum_ij alpha_ij g_alpha_ij (part[b, block])."""
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < HW
    x_b = x_ptr + i_b.to(tl.int64) * sxb
    d_b = dx_ptr + i_b.to(tl.int64) * sdb
    o_pix = _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
    o_dpix = _pixel_offset(o_p, W, sdh, sdw, D_DENSE)
    g_alpha = tl.load(ga_ptr + i_b * HW + o_p, mask=m_p, other=0.0)
    alpha = tl.load(alpha_ptr + i_b * HW + o_p, mask=m_p, other=0.0).to(tl.float32)
    for c0 in range(0, C, BLOCK_C):
        o_c = c0 + tl.arange(0, BLOCK_C)
        m_c = o_c < C
        m = m_c[:, None] & m_p[None, :]
        b_gf = tl.load(gf_ptr + i_b * C + o_c, mask=m_c, other=0.0)
        b_x = tl.load(x_b + o_c[:, None] * sxc + o_pix[None, :], mask=m, other=0.0)
        g_alpha += tl.sum(b_x.to(tl.float32) * b_gf[:, None], axis=0)
        b_dx = (b_gf[:, None] * alpha[None, :]).to(dx_ptr.dtype.element_ty)
        tl.store(d_b + o_c[:, None] * sdc + o_dpix[None, :], b_dx, mask=m)
    tl.store(work_ptr + i_b * HW + o_p, g_alpha, mask=m_p)
    tl.store(part_ptr + i_b * NUM_PB + i_p, tl.sum(tl.where(m_p, alpha * g_alpha, 0.0), axis=0))


@triton.jit
def _soft_pool_bwd_score_kernel(
    alpha_ptr, work_ptr, part_ptr, ds_ptr, HW, NUM_PB,
    BLOCK_P: tl.constexpr,
):
    """ds_ij = alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl), the sum from the pixel kernel's partials."""
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    dot_lanes = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for q0 in range(0, NUM_PB, BLOCK_P):
        o_q = q0 + tl.arange(0, BLOCK_P)
        dot_lanes += tl.load(part_ptr + i_b * NUM_PB + o_q, mask=o_q < NUM_PB, other=0.0)
    dot = tl.sum(dot_lanes, axis=0)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < HW
    alpha = tl.load(alpha_ptr + i_b * HW + o_p, mask=m_p, other=0.0).to(tl.float32)
    g_alpha = tl.load(work_ptr + i_b * HW + o_p, mask=m_p, other=0.0)
    tl.store(ds_ptr + i_b * HW + o_p, (alpha * (g_alpha - dot)).to(ds_ptr.dtype.element_ty), mask=m_p)


# --------------------------------------------------------------------------------------------- launchers


def _dense(t: Tensor) -> bool:
    """Whether t [B, C, H, W]'s pixels are evenly spaced (stride_h == W * stride_w); see _pixel_offset."""
    return t.shape[2] <= 1 or t.stride(2) == t.shape[3] * t.stride(3)


def _blocks(C: int, A: int, gpu: bool) -> tuple[int, int, int]:
    """(BLOCK_P, BLOCK_C, BLOCK_A); tl.dot needs every dimension >= 16."""
    block_c = min(max(16, triton.next_power_of_2(C)), 64)
    block_a = min(max(16, triton.next_power_of_2(A)), 64)
    block_p = 32 if gpu else 16
    return block_p, block_c, block_a


def _pixel_splits(x: Tensor, B: int, HW: int, block_p: int) -> tuple[int, int]:
    """(splits, pixels per split) of a per-sample pixel loop: whole pixel blocks, and enough splits for the GPU
    (B programs alone leave most SMs idle at VG-14, B = 32); every split holds at least one pixel."""
    splits = max(1, min(triton.cdiv(HW, block_p), triton.cdiv(_launch.num_programs_target(x), B)))
    p_per_split = triton.cdiv(triton.cdiv(HW, splits), block_p) * block_p
    return triton.cdiv(HW, p_per_split), p_per_split


def _head_launch(x: Tensor, cls_weight: Tensor, cls_bias: Tensor | None) -> tuple[Tensor, Tensor, dict]:
    """What every marginal-head kernel takes besides its data: the contiguous classifier weight, the contiguous bias
    argument (the weight when there is no bias: HAS_BIAS=False, never read) and the constexpr keywords (blocks, layout,
    precision)."""
    block_p, block_c, block_a = _blocks(x.shape[1], cls_weight.shape[0], _launch.on_gpu(x))
    wc = cls_weight.contiguous()
    meta = dict(HAS_BIAS=cls_bias is not None, X_DENSE=_dense(x), BLOCK_P=block_p, BLOCK_C=block_c,
                BLOCK_A=block_a, PRECISION=_launch.dot_precision(x))
    return wc, cls_bias.contiguous() if cls_bias is not None else wc, meta


def _fwd_num_warps(x: Tensor, meta: dict) -> int:
    """8 warps for the forward's wide [BLOCK_A, BLOCK_C] tiles on a GPU, else 4."""
    return 8 if _launch.on_gpu(x) and meta["BLOCK_A"] * meta["BLOCK_C"] >= 4096 else 4


def _empty_head_grads(x: Tensor, cls_weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A head backward's outputs for an empty batch (B = 0): dx, dscores [0, H, W], zero dcls_weight and dcls_bias."""
    B, _, H, W = x.shape
    return torch.empty_like(x), x.new_empty((B, H, W)), torch.zeros_like(cls_weight), x.new_zeros(cls_weight.shape[0])


def hard_attention_marginal_fwd(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """(log_p [B,A] in x's dtype, alpha [B,H,W], stats fp32 [B, 2*HW + A]) — see pan_kernels.ops.schemas."""
    B, C, H, W = x.shape
    A, HW = cls_weight.shape[0], H * W
    log_p = x.new_empty((B, A))
    alpha = x.new_empty((B, H, W))
    stats = torch.empty((B, 2 * HW + A), device=x.device, dtype=torch.float32)
    if B == 0:
        return log_p, alpha, stats
    wc, bias, meta = _head_launch(x, cls_weight, cls_bias)
    splits, p_per_split = _pixel_splits(x, B, HW, meta["BLOCK_P"])
    part = torch.empty((B, splits, A), device=x.device, dtype=torch.float32)
    _hard_marginal_fwd_kernel[(splits, B)](
        x, scores.contiguous(), wc, bias, alpha, stats, part, C, HW, W, A, p_per_split, splits, *x.stride(),
        num_warps=_fwd_num_warps(x, meta), **meta,
    )
    log_p32 = torch.logsumexp(part, dim=1)
    stats[:, 2 * HW:] = log_p32
    log_p.copy_(log_p32)
    return log_p, alpha, stats


def hard_attention_marginal_bwd(
    grad_log_p: Tensor, grad_alpha: Tensor, x: Tensor, cls_weight: Tensor, cls_bias: Tensor | None, stats: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dx, dscores, dcls_weight, dcls_bias) in x's dtype."""
    B, C, H, W = x.shape
    A, HW = cls_weight.shape[0], H * W
    if B == 0:
        return _empty_head_grads(x, cls_weight)
    dx, ds = torch.empty_like(x), x.new_empty((B, H, W))
    g = grad_log_p.float().contiguous()
    ga = grad_alpha.float().reshape(B, HW).contiguous()
    alpha = stats[:, :HW].exp()
    gz = torch.empty((B, HW, A), device=x.device, dtype=torch.float32)
    wc, bias, meta = _head_launch(x, cls_weight, cls_bias)
    _hard_marginal_bwd_kernel[(triton.cdiv(HW, meta["BLOCK_P"]), B)](
        x, wc, bias, stats, g, g.sum(1), ga, (alpha * ga).sum(1), ds, gz, C, HW, W, A, *x.stride(), **meta)
    x_rows = x.reshape(B, C, HW).float()
    dx.copy_(torch.matmul(gz, wc.float()).transpose(1, 2).reshape(B, C, H, W))
    dwc = torch.einsum("bpa,bcp->ac", gz, x_rows)
    return dx, ds, dwc.to(x.dtype), gz.sum((0, 1)).to(x.dtype)


def soft_attention_pool_fwd(x: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """(f_att [B,C], alpha [B,H,W]) in x's dtype."""
    B, C, H, W = x.shape
    f = x.new_empty((B, C))
    alpha = x.new_empty((B, H, W))
    if B == 0:
        return f, alpha
    block_p, block_c, _ = _blocks(C, 1, _launch.on_gpu(x))
    _soft_pool_fwd_kernel[(triton.cdiv(C, block_c), B)](
        x, scores.contiguous(), f, alpha, C, H * W, W, *x.stride(), X_DENSE=_dense(x), BLOCK_P=block_p,
        BLOCK_C=block_c,
    )
    return f, alpha


def soft_attention_pool_bwd(grad_f: Tensor, grad_alpha: Tensor, x: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """(dx, dscores) in x's dtype."""
    B, C, H, W = x.shape
    dx = torch.empty_like(x)
    ds = x.new_empty((B, H, W))
    if B == 0:
        return dx, ds
    HW = H * W
    block_p, block_c, _ = _blocks(C, 1, _launch.on_gpu(x))
    num_pb = triton.cdiv(HW, block_p)
    work = torch.empty((B, HW), device=x.device, dtype=torch.float32)
    part = torch.empty((B, num_pb), device=x.device, dtype=torch.float32)
    a = alpha.contiguous()
    _soft_pool_bwd_pixel_kernel[(num_pb, B)](
        x, a, grad_f.float().contiguous(), grad_alpha.float().contiguous(), dx, work, part,
        C, HW, W, num_pb, *x.stride(), *dx.stride(), X_DENSE=_dense(x), D_DENSE=_dense(dx),
        BLOCK_P=block_p, BLOCK_C=block_c,
    )
    _soft_pool_bwd_score_kernel[(num_pb, B)](a, work, part, ds, HW, num_pb, BLOCK_P=block_p)
    return dx, ds
