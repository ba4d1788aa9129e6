// CUDA kernels of the multi-label hard marginal (op hard_attention_marginal_multilabel, paper §4.2).
//
// p_a = sum_ij alpha_ij sigmoid(z_ija), z = Wc x_ij + bc, alpha = softmax_ij(s). Since alpha sums to 1,
// 1 - p_a = sum_ij alpha_ij sigmoid(-z_ija): log p_a and log(1 - p_a) are logsumexps over pixels of
// log alpha_ij + logsigmoid(+-z_ija), finite wherever the inputs are (no log of a rounded p).
// Forward: one kernel per (sample, 64-pixel tile) computes log alpha and, per class tile on the tensor cores (the
// k = 1 case of the conv main loop; logits never stored), both logsumexps over the tile's pixels; a merge kernel
// combines the tiles. Backward: one kernel recomputes z, forms u_ij = sum_a (G_a r+_ija + H_a r-_ija) and grad_s
// (pass 1), then grad_z = alpha sigmoid(z) sigmoid(-z) (G_a / p_a - H_a / (1 - p_a)) into an fp32 workspace
// (pass 2); dx = grad_z Wc and dWc = grad_z^T x are matmuls, as for hard_attention_marginal.
#include "common.cuh"
#include "marginal_device.cuh"
#include "marginal_host.cuh"
#include "ops.h"

namespace pan {
namespace {

// (logsigmoid(z), logsigmoid(-z)) without overflow: logsigmoid(z) = min(z, 0) - log(1 + exp(-|z|)); NaN stays NaN.
__device__ __forceinline__ void log_sigmoid_pair(float z, float& pos, float& neg) {
  const float t = log1pf(expf(-fabsf(z)));
  pos = fminf(z, 0.f) - t;
  neg = fminf(-z, 0.f) - t;
}

// part[b, tile, 0 | 1, a] = logsumexp_{ij in tile}(log alpha_ij + logsigmoid(+z_ija | -z_ija)); also
// alpha = softmax(s) and stats[b] = [log alpha (HW) | (log p, log(1 - p): written by the merge kernel) (2A)].
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    multilabel_fwd_kernel(ConvArgs ca, const scalar_of<P>* bc, Strided3<scalar_of<P>> sc, scalar_of<P>* alpha_out,
                          float* stats, float* part) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* la_s = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [kBM]
  float* cm = la_s + kBM;                                                                     // [sign][wm][BN]
  float* cl = cm + 4 * BN;                                                                    // [sign][wm][BN]
  float* scratch = cl + 4 * BN;                                                               // [8]
  const int tid = threadIdx.x;
  const Fragment fr = Fragment::of_thread();
  const int A = ca.Nout, HW = ca.H * ca.W, b = tile.b;
  float* st = stats + static_cast<int64_t>(b) * (HW + 2 * A);

  tile_log_alpha(tile, sc, alpha_out, st, la_s, scratch);  // la_s read after the barriers of tile.run()

  float* dst = part + (static_cast<int64_t>(b) * ca.tiles_per_img + blockIdx.x % ca.tiles_per_img) * 2 * A;
  float acc[2][G::NF][4];
  for (int n0 = 0; n0 < A; n0 += BN) {
    tile.run(acc, n0);
    fr.cols<BN>([&](int nf, int jn, int col) {
      const int n = n0 + col;
      float mp = -INFINITY, lp = 0.f, mn = -INFINITY, ln = 0.f;
      if (n < A) {
        const float bias = bc != nullptr ? static_cast<float>(bc[n]) : 0.f;
        fr.rows([&](int mf, int h, int row) {
          int i, j;
          if (!tile.row_pixel(row, i, j)) return;
          float pos, neg;
          log_sigmoid_pair(acc[mf][nf][2 * h + jn] + bias, pos, neg);
          lse_push(mp, lp, la_s[row] + pos);
          lse_push(mn, ln, la_s[row] + neg);
        });
      }
      column_lse_store(mp, lp, cm + fr.wm * BN + col, cl + fr.wm * BN + col, fr.g);
      column_lse_store(mn, ln, cm + (2 + fr.wm) * BN + col, cl + (2 + fr.wm) * BN + col, fr.g);
    });
    __syncthreads();
    for (int c = tid; c < BN; c += kThreads) {
      const int n = n0 + c;
      if (n >= A) continue;
      PAN_UNROLL
      for (int sign = 0; sign < 2; ++sign) {
        float mm = cm[2 * sign * BN + c], ll = cl[2 * sign * BN + c];
        lse_merge(mm, ll, cm[(2 * sign + 1) * BN + c], cl[(2 * sign + 1) * BN + c]);
        dst[sign * A + n] = lse_value(mm, ll);
      }
    }
    // cm/cl are rewritten only after the __syncthreads() inside the next tile.run()
  }
}

// [log p | log(1 - p)][b, a] = logsumexp over tiles of part[b, tile, 0 | 1, a]; also stored in fp32 in stats[b].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    multilabel_merge_kernel(const float* part, int ntiles, int A, int HW, float* stats, T* log_p, T* log_1mp) {
  const int b = blockIdx.x;
  for (int e = threadIdx.x; e < 2 * A; e += kThreads) {
    float m = -INFINITY, l = 0.f;
    for (int s = 0; s < ntiles; ++s) lse_push(m, l, part[(static_cast<int64_t>(b) * ntiles + s) * 2 * A + e]);
    const float v = lse_value(m, l);
    stats[static_cast<int64_t>(b) * (HW + 2 * A) + HW + e] = v;
    (e < A ? log_p : log_1mp)[static_cast<int64_t>(b) * A + e % A] = static_cast<T>(v);
  }
}

// u_ij = sum_a (G_a r+_ija + H_a r-_ija) with r+- = alpha_ij sigmoid(+-z_ija) / (p_a | 1 - p_a);
// ds_ij = u_ij - alpha_ij sum_a (G_a + H_a) + alpha_ij (g_alpha_ij - sum_kl alpha_kl g_alpha_kl);
// gz[b, ij, a] = alpha_ij sigmoid(z) sigmoid(-z) (G_a / p_a - H_a / (1 - p_a)) (fp32 workspace).
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    multilabel_bwd_kernel(ConvArgs ca, const scalar_of<P>* bc, const float* stats, Strided2<scalar_of<P>> gl,
                          Strided2<scalar_of<P>> gh, Strided3<scalar_of<P>> ga, scalar_of<P>* ds_out, float* gz) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* la_s = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [kBM]
  float* ured = la_s + kBM;                                                                   // [2][kBM]
  float* scratch = ured + 2 * kBM;                                                            // [8]
  const int tid = threadIdx.x;
  const int A = ca.Nout, W = ca.W, HW = ca.H * ca.W, b = tile.b;
  const float* st = stats + static_cast<int64_t>(b) * (HW + 2 * A);

  float v = 0.f;
  for (int a = tid; a < A; a += kThreads) v += gl.at(b, a) + gh.at(b, a);
  const float gsum = block_sum(v, scratch);
  const float gadot = alpha_dot(st, ga, b, ca.H, W, scratch);
  if (tid < kBM) {
    int i, j;
    la_s[tid] = tile.row_pixel(tid, i, j) ? st[i * W + j] : -INFINITY;
  }
  __syncthreads();

  // pass 1: u, then ds
  float u[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
  float acc[2][G::NF][4];
  for_each_logit(tile, acc, A, bc, [&](int n, auto&& rows) {
    const float gn = gl.at(b, n), hn = gh.at(b, n), lp = st[HW + n], l1p = st[HW + A + n];
    rows([&](int mf, int h, int row, int, int, float z) {
      float pos, neg;
      log_sigmoid_pair(z, pos, neg);
      u[mf][h] += gn * expf(la_s[row] + pos - lp) + hn * expf(la_s[row] + neg - l1p);
    });
  });
  store_row_partials(u, ured);
  __syncthreads();
  if (tid < kBM) {
    int i, j;
    if (tile.row_pixel(tid, i, j)) {
      const float alpha = expf(la_s[tid]);
      const float ds = ured[tid] + ured[kBM + tid] - alpha * gsum + alpha * (ga.at(b, i, j) - gadot);
      ds_out[static_cast<int64_t>(b) * HW + i * W + j] = static_cast<T>(ds);
    }
  }

  // pass 2: gz (every exponent <= 0: alpha sigmoid(+-z) <= p or 1 - p)
  for_each_logit(tile, acc, A, bc, [&](int n, auto&& rows) {
    const float gn = gl.at(b, n), hn = gh.at(b, n), lp = st[HW + n], l1p = st[HW + A + n];
    rows([&](int, int, int row, int i, int j, float z) {
      float pos, neg;
      log_sigmoid_pair(z, pos, neg);
      const float base = la_s[row] + pos + neg;
      gz[(static_cast<int64_t>(b) * HW + i * W + j) * A + n] = gn * expf(base - lp) - hn * expf(base - l1p);
    });
  });
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_multilabel_cuda(const Tensor& x,
                                                                                   const Tensor& scores,
                                                                                   const Tensor& cls_weight,
                                                                                   const OptTensor& cls_bias) {
  const char* op = "hard_attention_marginal_multilabel_cuda";
  const MarginalProblem m = marginal_problem(op, x, cls_weight, cls_bias);
  check_scores(op, "scores", scores, x);
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  const int64_t A = m.A, B = m.B, HW = m.HW;
  Tensor log_p = poisoned(at::empty({B, A}, x.options()));
  Tensor log_1mp = poisoned(at::empty({B, A}, x.options()));
  Tensor alpha = poisoned(at::empty({B, m.H, m.W}, x.options()));
  Tensor stats = poisoned(at::empty({B, HW + 2 * A}, x.options().dtype(at::kFloat)));
  if (B == 0) return {log_p, log_1mp, alpha, stats};
  Tensor part = poisoned(at::empty({B, m.ntiles, 2, A}, x.options().dtype(at::kFloat)));
  dispatch_marginal(op, x, m, [&](auto ptag, auto btag, const ConvArgs& ca) {
    constexpr Prec P = decltype(ptag)::value;
    constexpr int BN = decltype(btag)::value;
    using T = scalar_of<P>;
    const int smem = conv_smem_bytes<P, BN>(m.tg.TH, m.tg.TW, 1) + (kBM + 8 * BN + 8) * 4;
    auto kernel = multilabel_fwd_kernel<P, BN>;
    set_smem_limit<multilabel_fwd_kernel<P, BN>>(smem);
    PAN_LAUNCH(kernel, dim3(grid_1d(B * m.ntiles, op)), dim3(kThreads), smem, ca, m.bias<T>(), strided3<T>(scores),
               static_cast<T*>(alpha.data_ptr()), stats.data_ptr<float>(), part.data_ptr<float>());
  });
  dispatch_dtype(x, op, [&](auto ptag) {
    using T = scalar_of<decltype(ptag)::value>;
    PAN_LAUNCH(multilabel_merge_kernel<T>, dim3(grid_1d(B, op)), dim3(kThreads), 0,
               static_cast<const float*>(part.data_ptr<float>()), static_cast<int>(m.ntiles), static_cast<int>(A),
               static_cast<int>(HW), stats.data_ptr<float>(), static_cast<T*>(log_p.data_ptr()),
               static_cast<T*>(log_1mp.data_ptr()));
  });
  return {log_p, log_1mp, alpha, stats};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_multilabel_cuda_backward(
    const Tensor& grad_log_p, const Tensor& grad_log_1mp, const Tensor& grad_alpha, const Tensor& x,
    const Tensor& cls_weight, const OptTensor& cls_bias, const Tensor& stats) {
  const char* op = "hard_attention_marginal_multilabel_cuda_backward";
  const MarginalProblem m = marginal_problem(op, x, cls_weight, cls_bias);
  check_like(op, "grad_log_p", grad_log_p, x);
  check_shape(op, "grad_log_p", grad_log_p, {m.B, m.A}, "[B, A]");
  check_like(op, "grad_log_1mp", grad_log_1mp, x);
  check_shape(op, "grad_log_1mp", grad_log_1mp, {m.B, m.A}, "[B, A]");
  check_scores(op, "grad_alpha", grad_alpha, x);
  check_stats(op, stats, x, m.HW + 2 * m.A, "[B, H*W + 2*A]");
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  const Tensor st = stats.contiguous();
  return marginal_backward(op, x, m, [&](auto ptag, auto btag, const ConvArgs& ca, Tensor& ds, Tensor& gz) {
    constexpr Prec P = decltype(ptag)::value;
    constexpr int BN = decltype(btag)::value;
    using T = scalar_of<P>;
    const int smem = conv_smem_bytes<P, BN>(m.tg.TH, m.tg.TW, 1) + (3 * kBM + 8) * 4;
    auto kernel = multilabel_bwd_kernel<P, BN>;
    set_smem_limit<multilabel_bwd_kernel<P, BN>>(smem);
    PAN_LAUNCH(kernel, dim3(grid_1d(m.B * m.ntiles, op)), dim3(kThreads), smem, ca, m.bias<T>(),
               st.data_ptr<float>(), strided2<T>(grad_log_p), strided2<T>(grad_log_1mp), strided3<T>(grad_alpha),
               static_cast<T*>(ds.data_ptr()), gz.data_ptr<float>());
  });
}

}  // namespace pan
