// CUDA kernels of the last attention layer: softmax over space + classifier (ops hard_attention_marginal,
// soft_attention_pool).
//
// hard_attention_marginal forward: one kernel per (sample, 64-pixel tile) computes log_softmax_ij(s), the logits
// z = Wc x_ij + bc on the tensor cores (the k = 1 case of the conv main loop; never written to memory), their
// logsumexp over classes (pass 1) and, per class, the logsumexp over the tile's pixels of
// log alpha_ij + log_softmax_a(z_ij) (pass 2, z recomputed); a tiny kernel merges the tiles into log p(a).
// Backward (docs/design.md, Backward designs): one kernel recomputes z and forms u_ij = sum_a G_a r_ija, grad_s and
// grad_z = G_a r_ija - p(a|ij) u_ij (fp32 workspace); dx = grad_z Wc and dWc = grad_z^T x are two matmuls.
// soft_attention_pool: f = sum_ij softmax(s)_ij x_ij, and its backward, on CUDA cores (a GEMV per sample).
#include "common.cuh"
#include "marginal_device.cuh"
#include "marginal_host.cuh"
#include "ops.h"

namespace pan {
namespace {

constexpr int kPChunk = 1024;  // pixels of alpha staged in shared memory at a time (soft pool)

// ------------------------------------------------------------------------------------------------ kernels

// part[b, tile, a] = logsumexp_{ij in tile}(log alpha_ij + z_ija - logsumexp_a' z_ija'); also alpha = softmax(s)
// and stats[b] = [log alpha (HW) | logsumexp_a z (HW) | (log p, written by the merge kernel) (A)].
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    hard_marginal_fwd_kernel(ConvArgs ca, const scalar_of<P>* bc, Strided3<scalar_of<P>> sc, scalar_of<P>* alpha_out,
                             float* stats, float* part) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* la_s = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [kBM]
  float* lz_s = la_s + kBM;                                                                   // [kBM]
  float* rm = lz_s + kBM;                                                                     // [2][kBM]
  float* rl = rm + 2 * kBM;                                                                   // [2][kBM]
  float* cm = rl + 2 * kBM;                                                                   // [2][BN]
  float* cl = cm + 2 * BN;                                                                    // [2][BN]
  float* scratch = cl + 2 * BN;                                                               // [8]
  const int tid = threadIdx.x;
  const Fragment fr = Fragment::of_thread();
  const int A = ca.Nout, W = ca.W, HW = ca.H * ca.W, b = tile.b;
  float* st = stats + static_cast<int64_t>(b) * (2 * HW + A);

  tile_log_alpha(tile, sc, alpha_out, st, la_s, scratch);  // la_s read in pass 2, after the barriers of tile.run()

  // pass 1: logsumexp over classes of every pixel
  float zm[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}}, zl[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
  float acc[2][G::NF][4];
  for_each_logit(tile, acc, A, bc, [&](int, auto&& rows) {
    rows([&](int mf, int h, int, int, int, float z) { lse_push(zm[mf][h], zl[mf][h], z); });
  });
  fr.rows([&](int mf, int h, int row) {
    float mm = zm[mf][h], ll = zl[mf][h];
    for (int s = 1; s < 4; s <<= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, mm, s), l2 = __shfl_xor_sync(0xffffffffu, ll, s);
      lse_merge(mm, ll, m2, l2);
    }
    if (fr.t == 0) {
      rm[fr.wn * kBM + row] = mm;
      rl[fr.wn * kBM + row] = ll;
    }
  });
  __syncthreads();
  if (tid < kBM) {
    float mm = rm[tid], ll = rl[tid];
    lse_merge(mm, ll, rm[kBM + tid], rl[kBM + tid]);
    const float lz = lse_value(mm, ll);
    lz_s[tid] = lz;
    int i, j;
    if (tile.row_pixel(tid, i, j)) st[HW + i * W + j] = lz;
  }
  __syncthreads();

  // pass 2: per class, logsumexp over the tile's pixels of log alpha + log_softmax_a(z)
  float* dst = part + (static_cast<int64_t>(b) * ca.tiles_per_img + blockIdx.x % ca.tiles_per_img) * A;
  for (int n0 = 0; n0 < A; n0 += BN) {
    tile.run(acc, n0);
    fr.cols<BN>([&](int nf, int jn, int col) {
      const int n = n0 + col;
      float cmv = -INFINITY, clv = 0.f;
      if (n < A) {
        const float bias = bc != nullptr ? static_cast<float>(bc[n]) : 0.f;
        fr.rows([&](int mf, int h, int row) {
          int i, j;
          if (tile.row_pixel(row, i, j)) lse_push(cmv, clv, acc[mf][nf][2 * h + jn] + bias + la_s[row] - lz_s[row]);
        });
      }
      column_lse_store(cmv, clv, cm + fr.wm * BN + col, cl + fr.wm * BN + col, fr.g);
    });
    __syncthreads();
    for (int c = tid; c < BN; c += kThreads) {
      const int n = n0 + c;
      if (n < A) {
        float mm = cm[c], ll = cl[c];
        lse_merge(mm, ll, cm[BN + c], cl[BN + c]);
        dst[n] = lse_value(mm, ll);
      }
    }
    // cm/cl are rewritten only after the __syncthreads() inside the next tile.run()
  }
}

// log p[b, a] = logsumexp over tiles of part[b, tile, a]; also stored in fp32 at the end of stats[b].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    hard_marginal_merge_kernel(const float* part, int ntiles, int A, int HW, float* stats, T* log_p) {
  const int b = blockIdx.x;
  for (int a = threadIdx.x; a < A; a += kThreads) {
    float m = -INFINITY, l = 0.f;
    for (int s = 0; s < ntiles; ++s) lse_push(m, l, part[(static_cast<int64_t>(b) * ntiles + s) * A + a]);
    const float v = lse_value(m, l);
    stats[static_cast<int64_t>(b) * (2 * HW + A) + 2 * HW + a] = v;
    log_p[static_cast<int64_t>(b) * A + a] = static_cast<T>(v);
  }
}

// r_ija = alpha_ij p(a|ij) / p(a); u_ij = sum_a G_a r_ija;
// ds_ij = u_ij - alpha_ij sum_a G_a + alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl);
// gz[b, ij, a] = G_a r_ija - p(a|ij) u_ij (fp32 workspace).
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    hard_marginal_bwd_kernel(ConvArgs ca, const scalar_of<P>* bc, const float* stats, Strided2<scalar_of<P>> gl,
                             Strided3<scalar_of<P>> ga, scalar_of<P>* ds_out, float* gz) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* la_s = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [kBM]
  float* lz_s = la_s + kBM;                                                                   // [kBM]
  float* u_s = lz_s + kBM;                                                                    // [kBM]
  float* ured = u_s + kBM;                                                                    // [2][kBM]
  float* scratch = ured + 2 * kBM;                                                            // [8]
  const int tid = threadIdx.x;
  const int A = ca.Nout, W = ca.W, HW = ca.H * ca.W, b = tile.b;
  const float* st = stats + static_cast<int64_t>(b) * (2 * HW + A);

  float v = 0.f;
  for (int a = tid; a < A; a += kThreads) v += gl.at(b, a);
  const float gsum = block_sum(v, scratch);
  const float gadot = alpha_dot(st, ga, b, ca.H, W, scratch);
  if (tid < kBM) {
    int i, j;
    const bool valid = tile.row_pixel(tid, i, j);
    la_s[tid] = valid ? st[i * W + j] : -INFINITY;
    lz_s[tid] = valid ? st[HW + i * W + j] : 0.f;
  }
  __syncthreads();

  // pass 1: u
  float u[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
  float acc[2][G::NF][4];
  for_each_logit(tile, acc, A, bc, [&](int n, auto&& rows) {
    const float gn = gl.at(b, n), lpn = st[2 * HW + n];
    rows([&](int mf, int h, int row, int, int, float z) {
      u[mf][h] += gn * expf(la_s[row] - lz_s[row] + z - lpn);
    });
  });
  store_row_partials(u, ured);
  __syncthreads();
  if (tid < kBM) {
    const float uu = ured[tid] + ured[kBM + tid];
    u_s[tid] = uu;
    int i, j;
    if (tile.row_pixel(tid, i, j)) {
      const float alpha = expf(la_s[tid]);
      const float ds = uu - alpha * gsum + alpha * (ga.at(b, i, j) - gadot);
      ds_out[static_cast<int64_t>(b) * HW + i * W + j] = static_cast<T>(ds);
    }
  }
  __syncthreads();

  // pass 2: gz
  for_each_logit(tile, acc, A, bc, [&](int n, auto&& rows) {
    const float gn = gl.at(b, n), lpn = st[2 * HW + n];
    rows([&](int, int, int row, int i, int j, float z) {
      const float lpz = z - lz_s[row];
      gz[(static_cast<int64_t>(b) * HW + i * W + j) * A + n] = gn * expf(la_s[row] + lpz - lpn) - expf(lpz) * u_s[row];
    });
  });
}

// f[b, c] = sum_ij softmax(s)_ij x[b, c, ij]; the first channel block also writes alpha.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    soft_pool_fwd_kernel(Strided4<T> x, Strided3<T> sc, int C, int H, int W, int cblocks, T* f, T* alpha_out,
                         int chan_fast) {
  PAN_DYNAMIC_SMEM(smem);
  float* alpha_c = reinterpret_cast<float*>(smem);  // [kPChunk]
  float* red = alpha_c + kPChunk;                   // [4][32]
  float* scratch = red + kThreads;                  // [8]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int b = blockIdx.x / cblocks, cb = blockIdx.x % cblocks, c0 = cb * 32, HW = H * W;

  float m = -INFINITY, l = 0.f;
  for (int p = tid; p < HW; p += kThreads) lse_push(m, l, sc.at(b, p / W, p % W));
  const float lse_s = block_lse(m, l, scratch);

  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int p0 = 0; p0 < HW; p0 += kPChunk) {
    const int np = HW - p0 < kPChunk ? HW - p0 : kPChunk;
    __syncthreads();  // the previous chunk of alpha is no longer read
    for (int q = tid; q < np; q += kThreads) {
      const int p = p0 + q;
      const float a = expf(sc.at(b, p / W, p % W) - lse_s);
      alpha_c[q] = a;
      if (cb == 0) alpha_out[static_cast<int64_t>(b) * HW + p] = static_cast<T>(a);
    }
    __syncthreads();
    if (!chan_fast) {  // warp w: channels c0 + w + 4 q; lanes along pixels
      PAN_UNROLL
      for (int q8 = 0; q8 < 8; ++q8) {
        const int c = c0 + warp + 4 * q8;
        if (c >= C) continue;
        for (int q = lane; q < np; q += 32) {
          const int p = p0 + q;
          acc[q8] += alpha_c[q] * x.at(b, c, p / W, p % W);
        }
      }
    } else {  // lane: channel c0 + lane; warps along pixels
      const int c = c0 + lane;
      if (c < C)
        for (int q = warp; q < np; q += kThreads / 32) {
          const int p = p0 + q;
          acc[0] += alpha_c[q] * x.at(b, c, p / W, p % W);
        }
    }
  }
  if (!chan_fast) {
    PAN_UNROLL
    for (int q8 = 0; q8 < 8; ++q8) {
      const float v = warp_sum(acc[q8]);
      const int c = c0 + warp + 4 * q8;
      if (lane == 0 && c < C) f[static_cast<int64_t>(b) * C + c] = static_cast<T>(v);
    }
  } else {
    red[tid] = acc[0];
    __syncthreads();
    if (tid < 32 && c0 + tid < C)
      f[static_cast<int64_t>(b) * C + c0 + tid] = static_cast<T>(red[tid] + red[32 + tid] + red[64 + tid] + red[96 + tid]);
  }
}

// Per pixel: work = g_alpha + sum_c G_c x_c (fp32) and dx_c = alpha G_c. The store to dx may alias x and G as far
// as the compiler knows, so a plain per-channel loop is one dependent load/store round trip per channel; loading
// kSoftPoolBatch channels of G and x before storing any of them keeps that many loads in flight (same summation order).
constexpr int kSoftPoolBatch = 8;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    soft_pool_bwd_pixel_kernel(Strided4<T> x, Strided3<T> alpha, Strided2<T> gf, Strided3<T> ga, int C, int H, int W,
                               int pblocks, float* work, Out4<T> dx) {
  const int b = blockIdx.x / pblocks, p = (blockIdx.x % pblocks) * kThreads + threadIdx.x;
  if (p >= H * W) return;  // no barrier in this kernel
  const int i = p / W, j = p % W;
  const float a = alpha.at(b, i, j);
  float gsum = ga.at(b, i, j);
  T* o = dx.p + b * dx.sb + i * dx.sh + j * dx.sw;
  int c = 0;
  for (; c + kSoftPoolBatch <= C; c += kSoftPoolBatch) {
    float gv[kSoftPoolBatch], xv[kSoftPoolBatch];
    PAN_UNROLL
    for (int u = 0; u < kSoftPoolBatch; ++u) {
      gv[u] = gf.at(b, c + u);
      xv[u] = x.at(b, c + u, i, j);
    }
    PAN_UNROLL
    for (int u = 0; u < kSoftPoolBatch; ++u) {
      gsum += gv[u] * xv[u];
      o[(c + u) * dx.sc] = static_cast<T>(a * gv[u]);
    }
  }
  for (; c < C; ++c) {
    const float gc = gf.at(b, c);
    gsum += gc * x.at(b, c, i, j);
    o[c * dx.sc] = static_cast<T>(a * gc);
  }
  work[static_cast<int64_t>(b) * H * W + p] = gsum;
}

// ds_ij = alpha_ij (work_ij - sum_kl alpha_kl work_kl).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    soft_pool_bwd_score_kernel(Strided3<T> alpha, const float* work, int H, int W, T* ds) {
  PAN_DYNAMIC_SMEM(smem);
  float* scratch = reinterpret_cast<float*>(smem);
  const int b = blockIdx.x, HW = H * W;
  const float* wk = work + static_cast<int64_t>(b) * HW;
  float v = 0.f;
  for (int p = threadIdx.x; p < HW; p += kThreads) v += alpha.at(b, p / W, p % W) * wk[p];
  const float dot = block_sum(v, scratch);
  for (int p = threadIdx.x; p < HW; p += kThreads)
    ds[static_cast<int64_t>(b) * HW + p] = static_cast<T>(alpha.at(b, p / W, p % W) * (wk[p] - dot));
}

// ---------------------------------------------------------------------------------------------- launchers

}  // namespace

std::tuple<Tensor, Tensor, Tensor> hard_attention_marginal_cuda(const Tensor& x, const Tensor& scores,
                                                                const Tensor& cls_weight, const OptTensor& cls_bias) {
  const char* op = "hard_attention_marginal_cuda";
  const MarginalProblem m = marginal_problem(op, x, cls_weight, cls_bias);
  check_scores(op, "scores", scores, x);
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  const int64_t A = m.A, B = m.B, HW = m.HW;
  Tensor log_p = poisoned(at::empty({B, A}, x.options()));
  Tensor alpha = poisoned(at::empty({B, m.H, m.W}, x.options()));
  Tensor stats = poisoned(at::empty({B, 2 * HW + A}, x.options().dtype(at::kFloat)));
  if (B == 0) return {log_p, alpha, stats};
  Tensor part = poisoned(at::empty({B, m.ntiles, A}, x.options().dtype(at::kFloat)));
  dispatch_marginal(op, x, m, [&](auto ptag, auto btag, const ConvArgs& ca) {
    constexpr Prec P = decltype(ptag)::value;
    constexpr int BN = decltype(btag)::value;
    using T = scalar_of<P>;
    const int smem = conv_smem_bytes<P, BN>(m.tg.TH, m.tg.TW, 1) + (6 * kBM + 4 * BN + 8) * 4;
    auto kernel = hard_marginal_fwd_kernel<P, BN>;
    set_smem_limit<hard_marginal_fwd_kernel<P, BN>>(smem);
    PAN_LAUNCH(kernel, dim3(grid_1d(B * m.ntiles, op)), dim3(kThreads), smem, ca, m.bias<T>(), strided3<T>(scores),
               static_cast<T*>(alpha.data_ptr()), stats.data_ptr<float>(), part.data_ptr<float>());
  });
  dispatch_dtype(x, op, [&](auto ptag) {
    using T = scalar_of<decltype(ptag)::value>;
    PAN_LAUNCH(hard_marginal_merge_kernel<T>, dim3(grid_1d(B, op)), dim3(kThreads), 0,
               static_cast<const float*>(part.data_ptr<float>()), static_cast<int>(m.ntiles), static_cast<int>(A),
               static_cast<int>(HW), stats.data_ptr<float>(), static_cast<T*>(log_p.data_ptr()));
  });
  return {log_p, alpha, stats};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_cuda_backward(
    const Tensor& grad_log_p, const Tensor& grad_alpha, const Tensor& x, const Tensor& cls_weight,
    const OptTensor& cls_bias, const Tensor& stats) {
  const char* op = "hard_attention_marginal_cuda_backward";
  const MarginalProblem m = marginal_problem(op, x, cls_weight, cls_bias);
  check_like(op, "grad_log_p", grad_log_p, x);
  check_shape(op, "grad_log_p", grad_log_p, {m.B, m.A}, "[B, A]");
  check_scores(op, "grad_alpha", grad_alpha, x);
  check_stats(op, stats, x, 2 * m.HW + m.A, "[B, 2*H*W + A]");
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  const Tensor st = stats.contiguous();
  return marginal_backward(op, x, m, [&](auto ptag, auto btag, const ConvArgs& ca, Tensor& ds, Tensor& gz) {
    constexpr Prec P = decltype(ptag)::value;
    constexpr int BN = decltype(btag)::value;
    using T = scalar_of<P>;
    const int smem = conv_smem_bytes<P, BN>(m.tg.TH, m.tg.TW, 1) + (5 * kBM + 8) * 4;
    auto kernel = hard_marginal_bwd_kernel<P, BN>;
    set_smem_limit<hard_marginal_bwd_kernel<P, BN>>(smem);
    PAN_LAUNCH(kernel, dim3(grid_1d(m.B * m.ntiles, op)), dim3(kThreads), smem, ca, m.bias<T>(),
               st.data_ptr<float>(), strided2<T>(grad_log_p), strided3<T>(grad_alpha),
               static_cast<T*>(ds.data_ptr()), gz.data_ptr<float>());
  });
}

std::tuple<Tensor, Tensor> soft_attention_pool_cuda(const Tensor& x, const Tensor& scores) {
  const char* op = "soft_attention_pool_cuda";
  check_x(op, x);
  check_scores(op, "scores", scores, x);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(B * H * W < (int64_t(1) << 31) && B * C < (int64_t(1) << 31), op, ": x is too large, got ", x.sizes());
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  Tensor f = poisoned(at::empty({B, C}, x.options()));
  Tensor alpha = poisoned(at::empty({B, H, W}, x.options()));
  if (B == 0) return {f, alpha};
  const int64_t cblocks = (C + 31) / 32;
  dispatch_dtype(x, op, [&](auto ptag) {
    using T = scalar_of<decltype(ptag)::value>;
    PAN_LAUNCH(soft_pool_fwd_kernel<T>, dim3(grid_1d(B * cblocks, op)), dim3(kThreads),
               (kPChunk + kThreads + 8) * 4, strided4<T>(x), strided3<T>(scores), static_cast<int>(C),
               static_cast<int>(H), static_cast<int>(W), static_cast<int>(cblocks), static_cast<T*>(f.data_ptr()),
               static_cast<T*>(alpha.data_ptr()), x.stride(1) < x.stride(3) ? 1 : 0);
  });
  return {f, alpha};
}

std::tuple<Tensor, Tensor> soft_attention_pool_cuda_backward(const Tensor& grad_f_att, const Tensor& grad_alpha,
                                                             const Tensor& x, const Tensor& alpha) {
  const char* op = "soft_attention_pool_cuda_backward";
  check_x(op, x);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  check_like(op, "grad_f_att", grad_f_att, x);
  check_shape(op, "grad_f_att", grad_f_att, {B, C}, "[B, C]");
  check_scores(op, "grad_alpha", grad_alpha, x);
  check_scores(op, "alpha", alpha, x);
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  Tensor dx = poisoned(at::empty_like(x));
  Tensor ds = poisoned(at::empty({B, H, W}, x.options()));
  if (B == 0) return {dx, ds};
  Tensor work = poisoned(at::empty({B, H * W}, x.options().dtype(at::kFloat)));
  const int64_t pblocks = (H * W + kThreads - 1) / kThreads;
  dispatch_dtype(x, op, [&](auto ptag) {
    using T = scalar_of<decltype(ptag)::value>;
    PAN_LAUNCH(soft_pool_bwd_pixel_kernel<T>, dim3(grid_1d(B * pblocks, op)), dim3(kThreads), 0, strided4<T>(x),
               strided3<T>(alpha), strided2<T>(grad_f_att), strided3<T>(grad_alpha), static_cast<int>(C),
               static_cast<int>(H), static_cast<int>(W), static_cast<int>(pblocks), work.data_ptr<float>(),
               out4<T>(dx));
    PAN_LAUNCH(soft_pool_bwd_score_kernel<T>, dim3(grid_1d(B, op)), dim3(kThreads), 8 * 4, strided3<T>(alpha),
               static_cast<const float*>(work.data_ptr<float>()), static_cast<int>(H), static_cast<int>(W),
               static_cast<T*>(ds.data_ptr()));
  });
  return {dx, ds};
}

}  // namespace pan
