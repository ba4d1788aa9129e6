"""Triton kernels of the multi-label hard marginal (op `hard_attention_marginal_multilabel`, paper §4.2).

p_a = sum_ij alpha_ij sigmoid(z_ija), z = Wc x_ij + bc, alpha = softmax_ij(s). Because sum_ij alpha_ij = 1,
1 - p_a = sum_ij alpha_ij sigmoid(-z_ija), so log p_a and log(1 - p_a) are two streaming log-sum-exps over pixels of
log alpha_ij + logsigmoid(+-z_ija): no log of a rounded p, finite wherever the inputs are.

Forward, one kernel per (pixel split, sample): logits tile by tile on `tl.dot`, never written to memory; the splits
merge by a [B, splits, 2, A] log-sum-exp. Backward, with G = dL/dlog p and H = dL/dlog(1 - p):
    r+_ija = alpha_ij sigmoid(z) / p_a,   r-_ija = alpha_ij sigmoid(-z) / (1 - p_a)
    dz_ija = alpha_ij sigmoid(z) sigmoid(-z) (G_a / p_a - H_a / (1 - p_a))
    ds_ij  = u_ij - alpha_ij sum_a (G_a + H_a) + alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl),
             u_ij = sum_a (G_a r+_ija + H_a r-_ija)  (d log(1 - p_a) / d alpha_ij = sigmoid(-z) / (1 - p_a))
three kernels (scores; dx = dz Wc; dWc = dz^T x and dbc) that recompute z instead of holding [B, HW, A].
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from pan_kernels.ops import _launch
from pan_kernels.ops._triton_utils import mma
from pan_kernels.ops.spatial_attention_triton import (
    _dense,
    _empty_head_grads,
    _fwd_num_warps,
    _head_launch,
    _logits_tile,
    _lse_columns,
    _pixel_offset,
    _pixel_splits,
    _split_softmax,
)


@triton.jit
def _log_sigmoid_pair(z):
    """(logsigmoid(z), logsigmoid(-z)) without overflow: logsigmoid(z) = min(z, 0) - log(1 + exp(-|z|))."""
    t = tl.log(1.0 + tl.exp(-tl.abs(z)))
    return tl.minimum(z, 0.0) - t, tl.minimum(-z, 0.0) - t


@triton.jit
def _ml_fwd_kernel(
    x_ptr, s_ptr, wc_ptr, bc_ptr, alpha_ptr, stats_ptr, part_ptr,
    C, HW, W, A, P_PER_SPLIT, NUM_SPLITS,
    sxb, sxc, sxh, sxw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_A: tl.constexpr, PRECISION: tl.constexpr,
):
    """part[b, split, 0 | 1, a] = logsumexp_{ij in split}(log alpha_ij + logsigmoid(+z_ija | -z_ija)).
    Also writes alpha = softmax_ij(s) and stats[b, :HW] = log alpha."""
    i_s, i_b = tl.program_id(0), tl.program_id(1)
    lse_s, p_start, p_end = _split_softmax(s_ptr, alpha_ptr, stats_ptr, i_b, i_s, HW, HW + 2 * A, P_PER_SPLIT,
                                           BLOCK_P)
    x_b = x_ptr + i_b.to(tl.int64) * sxb
    part_b = part_ptr + (i_b * NUM_SPLITS + i_s) * 2 * A
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        m_a = o_a < A
        m_pos = tl.full((BLOCK_A,), -float("inf"), dtype=tl.float32)
        l_pos = tl.zeros((BLOCK_A,), dtype=tl.float32)
        m_neg = tl.full((BLOCK_A,), -float("inf"), dtype=tl.float32)
        l_neg = tl.zeros((BLOCK_A,), dtype=tl.float32)
        for p0 in range(p_start, p_end, BLOCK_P):
            o_p = p0 + tl.arange(0, BLOCK_P)
            m_p = o_p < p_end
            x_base = x_b + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
            z = _logits_tile(x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A,
                             PRECISION)
            log_alpha = tl.load(s_ptr + i_b * HW + o_p, mask=m_p, other=0.0).to(tl.float32) - lse_s
            ls_pos, ls_neg = _log_sigmoid_pair(z)
            m_pos, l_pos = _lse_columns(m_pos, l_pos, tl.where(m_p[:, None], log_alpha[:, None] + ls_pos,
                                                               -float("inf")))
            m_neg, l_neg = _lse_columns(m_neg, l_neg, tl.where(m_p[:, None], log_alpha[:, None] + ls_neg,
                                                               -float("inf")))
        tl.store(part_b + o_a, m_pos + tl.log(l_pos), mask=m_a)
        tl.store(part_b + A + o_a, m_neg + tl.log(l_neg), mask=m_a)


@triton.jit
def _ml_logit_grads(
    x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, i_b, log_alpha, m_p, o_a, m_a, C, HW, A, sxc,
    HAS_BIAS: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_A: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """For one [pixels, classes] tile: (dz, u-terms G_a r+ + H_a r-), both [BLOCK_P, BLOCK_A] fp32, 0 off the tile."""
    z = _logits_tile(x_base, wc_ptr, bc_ptr, m_p, o_a, m_a, C, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
    ls_pos, ls_neg = _log_sigmoid_pair(z)
    stats_b = stats_ptr + i_b * (HW + 2 * A) + HW
    log_p = tl.load(stats_b + o_a, mask=m_a, other=0.0)[None, :]
    log_1mp = tl.load(stats_b + A + o_a, mask=m_a, other=0.0)[None, :]
    b_g = tl.load(g_ptr + i_b * A + o_a, mask=m_a, other=0.0)[None, :]
    b_h = tl.load(h_ptr + i_b * A + o_a, mask=m_a, other=0.0)[None, :]
    base = log_alpha[:, None] + ls_pos + ls_neg
    # every exponent is <= 0: alpha sigmoid(+-z) <= p or 1 - p
    dz = b_g * tl.exp(base - log_p) - b_h * tl.exp(base - log_1mp)
    u = b_g * tl.exp(log_alpha[:, None] + ls_pos - log_p) + b_h * tl.exp(log_alpha[:, None] + ls_neg - log_1mp)
    on = m_p[:, None] & m_a[None, :]
    return tl.where(on, dz, 0.0), tl.where(on, u, 0.0)


@triton.jit
def _ml_bwd_scores_kernel(
    x_ptr, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, gsum_ptr, ga_ptr, gadot_ptr, ds_ptr,
    C, HW, W, A, sxb, sxc, sxh, sxw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_A: tl.constexpr, PRECISION: tl.constexpr,
):
    """ds_ij = u_ij - alpha_ij sum_a (G_a + H_a) + alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl)."""
    i_p, i_b = tl.program_id(0), tl.program_id(1)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < HW
    log_alpha = tl.load(stats_ptr + i_b * (HW + 2 * A) + o_p, mask=m_p, other=-float("inf"))
    x_base = x_ptr + i_b.to(tl.int64) * sxb + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
    u = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        _, u_terms = _ml_logit_grads(x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, i_b, log_alpha, m_p, o_a,
                                     o_a < A, C, HW, A, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
        u += tl.sum(u_terms, axis=1)
    alpha = tl.exp(log_alpha)
    b_ga = tl.load(ga_ptr + i_b * HW + o_p, mask=m_p, other=0.0)
    ds = u - alpha * tl.load(gsum_ptr + i_b) + alpha * (b_ga - tl.load(gadot_ptr + i_b))
    tl.store(ds_ptr + i_b * HW + o_p, ds.to(ds_ptr.dtype.element_ty), mask=m_p)


@triton.jit
def _ml_bwd_dx_kernel(
    x_ptr, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, dx_ptr,
    C, HW, W, A, sxb, sxc, sxh, sxw, sdb, sdc, sdh, sdw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, D_DENSE: tl.constexpr, BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_CO: tl.constexpr, PRECISION: tl.constexpr,
):
    """dx[b, c, ij] = sum_a dz_ija Wc[a, c] for one (pixel block, output-channel block, sample)."""
    i_p, i_co, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_p = i_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m_p = o_p < HW
    o_co = i_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    m_co = o_co < C
    log_alpha = tl.load(stats_ptr + i_b * (HW + 2 * A) + o_p, mask=m_p, other=-float("inf"))
    x_base = x_ptr + i_b.to(tl.int64) * sxb + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
    acc = tl.zeros((BLOCK_P, BLOCK_CO), dtype=tl.float32)
    for a0 in range(0, A, BLOCK_A):
        o_a = a0 + tl.arange(0, BLOCK_A)
        m_a = o_a < A
        dz, _ = _ml_logit_grads(x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, i_b, log_alpha, m_p, o_a, m_a,
                                C, HW, A, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
        b_w = tl.load(wc_ptr + o_a[:, None] * C + o_co[None, :], mask=m_a[:, None] & m_co[None, :], other=0.0)
        acc = mma(dz.to(wc_ptr.dtype.element_ty), b_w, acc, PRECISION)
    d_base = dx_ptr + i_b.to(tl.int64) * sdb + _pixel_offset(o_p, W, sdh, sdw, D_DENSE)
    tl.store(d_base[:, None] + o_co[None, :] * sdc, acc.to(dx_ptr.dtype.element_ty),
             mask=m_p[:, None] & m_co[None, :])


@triton.jit
def _ml_bwd_dw_kernel(
    x_ptr, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, dw_ptr, db_ptr,
    B, C, HW, W, A, B_PER_SPLIT, sxb, sxc, sxh, sxw,
    HAS_BIAS: tl.constexpr, X_DENSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    BLOCK_A: tl.constexpr, BLOCK_CO: tl.constexpr, PRECISION: tl.constexpr,
):
    """Partial sums over one split of the batch: dw[split, a, c] = sum_{b, ij} dz_ija x[b, c, ij] and (from the first
    channel block) db[split, a] = sum_{b, ij} dz_ija."""
    i_a, i_co, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_a = i_a * BLOCK_A + tl.arange(0, BLOCK_A)
    m_a = o_a < A
    o_co = i_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    m_co = o_co < C
    acc = tl.zeros((BLOCK_A, BLOCK_CO), dtype=tl.float32)
    acc_b = tl.zeros((BLOCK_A,), dtype=tl.float32)
    b_start = i_s * B_PER_SPLIT
    x_b = x_ptr + b_start.to(tl.int64) * sxb
    for i_b in range(b_start, tl.minimum(b_start + B_PER_SPLIT, B)):
        for p0 in range(0, HW, BLOCK_P):
            o_p = p0 + tl.arange(0, BLOCK_P)
            m_p = o_p < HW
            log_alpha = tl.load(stats_ptr + i_b * (HW + 2 * A) + o_p, mask=m_p, other=-float("inf"))
            x_base = x_b + _pixel_offset(o_p, W, sxh, sxw, X_DENSE)
            dz, _ = _ml_logit_grads(x_base, wc_ptr, bc_ptr, stats_ptr, g_ptr, h_ptr, i_b, log_alpha, m_p, o_a, m_a,
                                    C, HW, A, sxc, HAS_BIAS, BLOCK_P, BLOCK_C, BLOCK_A, PRECISION)
            b_x = tl.load(x_base[:, None] + o_co[None, :] * sxc, mask=m_p[:, None] & m_co[None, :], other=0.0)
            acc = mma(tl.trans(dz.to(x_ptr.dtype.element_ty)), b_x, acc, PRECISION)
            acc_b += tl.sum(dz, axis=0)
        x_b += sxb
    tl.store(dw_ptr + (i_s * A + o_a[:, None]).to(tl.int64) * C + o_co[None, :], acc,
             mask=m_a[:, None] & m_co[None, :])
    if i_co == 0:
        tl.store(db_ptr + i_s * A + o_a, acc_b, mask=m_a)


# --------------------------------------------------------------------------------------------- launchers


def _out_channel_block(C: int, gpu: bool) -> int:
    """Output-channel tile of the dx / dWc kernels: each tile recomputes the logits, so GPU tiles are wide."""
    return min(max(16, triton.next_power_of_2(C)), 128 if gpu else 32)


def hard_attention_marginal_multilabel_fwd(
    x: Tensor, scores: Tensor, cls_weight: Tensor, cls_bias: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(log_p [B,A], log_1mp [B,A] in x's dtype, alpha [B,H,W], stats fp32 [B, HW + 2A]) — see ops.schemas."""
    B, C, H, W = x.shape
    A, HW = cls_weight.shape[0], H * W
    log_p, log_1mp = x.new_empty((B, A)), x.new_empty((B, A))
    alpha = x.new_empty((B, H, W))
    stats = torch.empty((B, HW + 2 * A), device=x.device, dtype=torch.float32)
    if B == 0:
        return log_p, log_1mp, alpha, stats
    wc, bias, meta = _head_launch(x, cls_weight, cls_bias)
    splits, p_per_split = _pixel_splits(x, B, HW, meta["BLOCK_P"])
    part = torch.empty((B, splits, 2, A), device=x.device, dtype=torch.float32)
    _ml_fwd_kernel[(splits, B)](
        x, scores.contiguous(), wc, bias, alpha, stats, part, C, HW, W, A, p_per_split, splits, *x.stride(),
        num_warps=_fwd_num_warps(x, meta), **meta,
    )
    merged = torch.logsumexp(part, dim=1)  # [B, 2, A]
    stats[:, HW:] = merged.reshape(B, 2 * A)
    log_p.copy_(merged[:, 0])
    log_1mp.copy_(merged[:, 1])
    return log_p, log_1mp, alpha, stats


def hard_attention_marginal_multilabel_bwd(
    grad_log_p: Tensor, grad_log_1mp: Tensor, grad_alpha: Tensor, x: Tensor, cls_weight: Tensor,
    cls_bias: Tensor | None, stats: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dx, dscores, dcls_weight, dcls_bias) in x's dtype."""
    B, C, H, W = x.shape
    A, HW = cls_weight.shape[0], H * W
    if B == 0:
        return _empty_head_grads(x, cls_weight)
    dx, ds = torch.empty_like(x), x.new_empty((B, H, W))
    g = grad_log_p.float().contiguous()
    h = grad_log_1mp.float().contiguous()
    ga = grad_alpha.float().reshape(B, HW).contiguous()
    alpha = stats[:, :HW].exp()
    block_co = _out_channel_block(C, _launch.on_gpu(x))
    wc, bc, common = _head_launch(x, cls_weight, cls_bias)
    block_p, block_a = common["BLOCK_P"], common["BLOCK_A"]
    num_pb = triton.cdiv(HW, block_p)
    _ml_bwd_scores_kernel[(num_pb, B)](
        x, wc, bc, stats, g, h, (g + h).sum(1), ga, (alpha * ga).sum(1), ds, C, HW, W, A, *x.stride(), **common)
    _ml_bwd_dx_kernel[(num_pb, triton.cdiv(C, block_co), B)](
        x, wc, bc, stats, g, h, dx, C, HW, W, A, *x.stride(), *dx.stride(), D_DENSE=_dense(dx), BLOCK_CO=block_co,
        **common)
    tiles = triton.cdiv(A, block_a) * triton.cdiv(C, block_co)
    splits = max(1, min(B, triton.cdiv(_launch.num_programs_target(x), tiles)))
    b_per_split = triton.cdiv(B, splits)
    splits = triton.cdiv(B, b_per_split)
    dw = torch.empty((splits, A, C), device=x.device, dtype=torch.float32)
    db = torch.empty((splits, A), device=x.device, dtype=torch.float32)
    _ml_bwd_dw_kernel[(triton.cdiv(A, block_a), triton.cdiv(C, block_co), splits)](
        x, wc, bc, stats, g, h, dw, db, B, C, HW, W, A, b_per_split, *x.stride(), BLOCK_CO=block_co, **common)
    return dx, ds, dw.sum(0).to(x.dtype), db.sum(0).to(x.dtype)
