// CUDA kernels of the local-context attention MLP (ops progressive_attention and attention_scores).
//
// Forward, one kernel: an implicit GEMM on the tensor cores (mma.sync: TF32 / BF16 / FP16, fp32 accumulation)
// over a 64-pixel tile whose k x k halo is staged once per 32 input channels in shared memory; the hidden
// activations h = relu(W1 * F + q + b1) stay in registers and are reduced with w2 to s; the gate writes
// alpha = sigmoid(s) and out = x * alpha.
// Backward (design D3 of docs/design.md, Backward designs, recompute h): kernel 1 recomputes h and writes g_pre = dL/d(pre) [B*H*W, Hd]
// plus per-tile partials of dquery_bias, dw2 and db2; kernel 2 is the weight-gradient GEMM
// dW1[tap, c, h] = sum_n x[n + tap, c] g_pre[n, h] split over pixels; kernel 3 is the data-gradient GEMM
// dx = sum_tap g_pre[. - tap] W1[tap] (the forward main loop with flipped taps) + g_out * alpha.
#include "common.cuh"
#include "ops.h"

namespace pan {
namespace {

// ------------------------------------------------------------------------------------------------ kernels

// s = w2 . relu(W1 * F + q + b1) + b2; gate: s_out <- alpha = sigmoid(s) and out <- x * alpha; else s_out <- s.
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    attention_mlp_fwd_kernel(ConvArgs ca, const scalar_of<P>* qb, const scalar_of<P>* b1, const scalar_of<P>* w2,
                             const scalar_of<P>* b2, Out4<scalar_of<P>> out, scalar_of<P>* s_out, int gate) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* s_red = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [2][kBM]
  float* alpha_s = s_red + 2 * kBM;                                                            // [kBM]
  const int tid = threadIdx.x;
  const Fragment fr = Fragment::of_thread();
  const int Hd = ca.Nout, b = tile.b;

  float rs[2][2] = {{0.f, 0.f}, {0.f, 0.f}};  // partial s of the thread's 4 rows
  float acc[2][G::NF][4];
  for (int n0 = 0; n0 < Hd; n0 += BN) {
    tile.run(acc, n0);
    fr.cols<BN>([&](int nf, int jn, int col) {
      const int n = n0 + col;
      if (n >= Hd) return;
      const float bias = static_cast<float>(qb[static_cast<int64_t>(b) * Hd + n]) +
                         (b1 != nullptr ? static_cast<float>(b1[n]) : 0.f);
      const float w = static_cast<float>(w2[n]);
      fr.rows([&](int mf, int h, int) { rs[mf][h] += w * relu_nan(acc[mf][nf][2 * h + jn] + bias); });
    });
  }
  store_row_partials(rs, s_red);
  __syncthreads();
  if (tid < kBM) {
    int i, j;
    const bool valid = tile.row_pixel(tid, i, j);
    float s = s_red[tid] + s_red[kBM + tid] + (b2 != nullptr ? static_cast<float>(*b2) : 0.f);
    if (gate) s = 1.f / (1.f + expf(-s));
    alpha_s[tid] = s;
    if (valid) s_out[(static_cast<int64_t>(b) * ca.H + i) * ca.W + j] = static_cast<T>(s);
  }
  if (!gate) return;
  __syncthreads();
  const T* x = static_cast<const T*>(ca.in) + b * ca.sb;
  T* o = out.p + b * out.sb;
  if (!ca.chan_fast) {
    for (int e = tid; e < kBM * ca.Cin; e += kThreads) {
      const int m = e % kBM, c = e / kBM;
      int i, j;
      if (tile.row_pixel(m, i, j))
        o[c * out.sc + i * out.sh + j * out.sw] =
            static_cast<T>(static_cast<float>(x[c * ca.sc + i * ca.sh + j * ca.sw]) * alpha_s[m]);
    }
  } else {
    for (int m = tid >> 5; m < kBM; m += kThreads / 32) {
      int i, j;
      if (!tile.row_pixel(m, i, j)) continue;
      for (int c = tid & 31; c < ca.Cin; c += 32)
        o[c * out.sc + i * out.sh + j * out.sw] =
            static_cast<T>(static_cast<float>(x[c * ca.sc + i * ca.sh + j * ca.sw]) * alpha_s[m]);
    }
  }
}

// g_s = (sum_c g_out x + g_alpha) alpha (1 - alpha) (gate) or g_s (scores); g_pre = g_s w2 [pre > 0].
// Writes g_pre [B*H*W, Hd] and per-(sample, tile) partials of dquery_bias, dw2 = sum g_s h and db2 = sum g_s.
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads) attention_mlp_bwd_pre_kernel(
    ConvArgs ca, const scalar_of<P>* qb, const scalar_of<P>* b1, const scalar_of<P>* w2, Strided4<scalar_of<P>> go,
    Strided3<scalar_of<P>> gs, Strided3<scalar_of<P>> alpha, int gate, scalar_of<P>* gpre, float* dqb_part,
    float* dw2_part, float* db2_part) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  float* gs_s = reinterpret_cast<float*>(smem + conv_smem_bytes<P, BN>(ca.TH, ca.TW, ca.k));  // [kBM]
  float* red = gs_s + kBM;                                                                    // [2][kBM]
  float* colq = red + 2 * kBM;                                                                // [2][BN]
  float* colw = colq + 2 * BN;                                                                // [2][BN]
  const int tid = threadIdx.x;
  const Fragment fr = Fragment::of_thread();
  const int Hd = ca.Nout, b = tile.b;
  const int64_t part_row = static_cast<int64_t>(b) * ca.tiles_per_img + blockIdx.x % ca.tiles_per_img;

  {
    const int m = tid % kBM;
    int i, j;
    const bool valid = tile.row_pixel(m, i, j);
    if (gate) {
      const T* x = static_cast<const T*>(ca.in) + b * ca.sb;
      float dot = 0.f;
      if (valid)
#ifndef PAN_EMULATE
#pragma unroll 4
#endif
        for (int c = tid / kBM; c < ca.Cin; c += kThreads / kBM)
          dot += go.at(b, c, i, j) * static_cast<float>(x[c * ca.sc + i * ca.sh + j * ca.sw]);
      red[tid] = dot;  // tid = (tid / kBM) * kBM + m
      __syncthreads();
      if (tid < kBM) {
        float v = 0.f;
        if (valid) {
          const float a = alpha.at(b, i, j);
          v = (red[m] + red[kBM + m] + gs.at(b, i, j)) * a * (1.f - a);
        }
        gs_s[m] = v;
      }
    } else if (tid < kBM) {
      gs_s[m] = valid ? gs.at(b, i, j) : 0.f;
    }
  }
  __syncthreads();
  if (tid == 0) {
    float s = 0.f;
    for (int m = 0; m < kBM; ++m) s += gs_s[m];
    db2_part[part_row] = s;
  }

  float acc[2][G::NF][4];
  for (int n0 = 0; n0 < Hd; n0 += BN) {
    tile.run(acc, n0);
    fr.cols<BN>([&](int nf, int jn, int col) {
      const int n = n0 + col;
      const bool nv = n < Hd;
      const float bias = nv ? static_cast<float>(qb[static_cast<int64_t>(b) * Hd + n]) +
                                  (b1 != nullptr ? static_cast<float>(b1[n]) : 0.f)
                            : 0.f;
      const float w = nv ? static_cast<float>(w2[n]) : 0.f;
      float cq = 0.f, cw = 0.f;
      fr.rows([&](int mf, int h, int m) {
        int i, j;
        if (!(tile.row_pixel(m, i, j) && nv)) return;
        const float pre = acc[mf][nf][2 * h + jn] + bias;
        const float gsv = gs_s[m];
        const float gp = pre > 0.f ? gsv * w : 0.f;
        gpre[((static_cast<int64_t>(b) * ca.H + i) * ca.W + j) * Hd + n] = static_cast<T>(gp);
        cq += gp;
        cw += gsv * relu_nan(pre);
      });
      PAN_UNROLL
      for (int s = 4; s < 32; s <<= 1) {
        cq += __shfl_xor_sync(0xffffffffu, cq, s);
        cw += __shfl_xor_sync(0xffffffffu, cw, s);
      }
      if (fr.g == 0) {
        colq[fr.wm * BN + col] = cq;
        colw[fr.wm * BN + col] = cw;
      }
    });
    __syncthreads();
    for (int c = tid; c < BN; c += kThreads) {
      const int n = n0 + c;
      if (n < Hd) {
        dqb_part[part_row * Hd + n] = colq[c] + colq[BN + c];
        dw2_part[part_row * Hd + n] = colw[c] + colw[BN + c];
      }
    }
    // colq/colw are rewritten only after the __syncthreads() inside the next tile.run()
  }
}

// dx[b, c, pixel] = sum_{tap, h} g_pre[pixel - tap, h] W1[h, c, tap] (+ g_out alpha when gated): the conv main
// loop over in = g_pre with the flipped, [k*k, C, Hd]-packed weights.
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    attention_mlp_bwd_input_kernel(ConvArgs ca, Strided4<scalar_of<P>> go, Strided3<scalar_of<P>> alpha, int gate,
                                   Out4<scalar_of<P>> dx) {
  using T = scalar_of<P>;
  using G = WarpGemm<P, BN>;
  PAN_DYNAMIC_SMEM(smem);
  ConvTile<P, BN> tile(ca, smem);
  const Fragment fr = Fragment::of_thread();
  const int C = ca.Nout, b = tile.b;
  T* o = dx.p + b * dx.sb;
  float acc[2][G::NF][4];
  for (int n0 = 0; n0 < C; n0 += BN) {
    tile.run(acc, n0);
    fr.rows([&](int mf, int h, int row) {
      int i, j;
      if (!tile.row_pixel(row, i, j)) return;
      const float a = gate ? alpha.at(b, i, j) : 0.f;
      fr.cols<BN>([&](int nf, int jn, int col) {
        const int c = n0 + col;
        if (c >= C) return;
        float v = acc[mf][nf][2 * h + jn];
        if (gate) v += go.at(b, c, i, j) * a;
        o[c * dx.sc + i * dx.sh + j * dx.sw] = static_cast<T>(v);
      });
    });
  }
}

// dw_part[split, tap * C + c, h] = sum_{n in split} x[b_n, c, i_n + dy_tap, j_n + dx_tap] g_pre[n, h]:
// a GEMM with rows (tap, c), columns h and the reduction over pixels n = b * H * W + p, split over blockIdx.y.
template <Prec P, int BN>
__global__ void __launch_bounds__(kThreads)
    attention_mlp_bwd_weight_kernel(Strided4<scalar_of<P>> x, const scalar_of<P>* gpre, float* dw_part, int C,
                                    int H, int W, int Hd, int k, int64_t N, int64_t n_per_split, int mtiles,
                                    int chan_fast) {
  using G = WarpGemm<P, BN>;
  using U = typename PrecTraits<P>::U;
  constexpr int LDW = G::LDW;
  PAN_DYNAMIC_SMEM(smem);
  uint32_t* As = reinterpret_cast<uint32_t*>(smem);  // [kBM][LDW]
  uint32_t* Bs = As + kBM * LDW;                      // [BN][LDW]
  int64_t* rowc = reinterpret_cast<int64_t*>(Bs + BN * LDW);  // [kBM] c * sc, -1 past the last row
  int64_t* colb = rowc + kBM;                                 // [kBC] b * sb, -1 past the split's end
  int* rowdy = reinterpret_cast<int*>(colb + kBC);            // [kBM]
  int* rowdx = rowdy + kBM;                                   // [kBM]
  int* coli = rowdx + kBM;                                    // [kBC]
  int* colj = coli + kBC;                                     // [kBC]

  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2;
  const int wm = (tid >> 5) & 1, wn = tid >> 6;
  const int m0 = (blockIdx.x % mtiles) * kBM, h0 = (blockIdx.x / mtiles) * BN;
  const int M = k * k * C, r = k / 2, HW = H * W;
  for (int m = tid; m < kBM; m += kThreads) {
    const int mg = m0 + m;
    if (mg < M) {
      const int tap = mg / C, c = mg % C;
      rowc[m] = c * x.sc;
      rowdy[m] = tap / k - r;
      rowdx[m] = tap % k - r;
    } else {
      rowc[m] = -1;
      rowdy[m] = rowdx[m] = 0;
    }
  }
  const int64_t n_start = blockIdx.y * n_per_split;
  const int64_t n_end = n_start + n_per_split < N ? n_start + n_per_split : N;
  const int a_row[2][2] = {{wm * 32 + g, wm * 32 + g + 8}, {wm * 32 + 16 + g, wm * 32 + 24 + g}};

  float acc[2][G::NF][4];
  for (int mf = 0; mf < 2; ++mf)
    for (int nf = 0; nf < G::NF; ++nf)
      for (int e = 0; e < 4; ++e) acc[mf][nf][e] = 0.f;

  for (int64_t nb = n_start; nb < n_end; nb += kBC) {
    __syncthreads();  // the previous chunk's tiles and column table are no longer read
    if (tid < kBC) {
      const int64_t n = nb + tid;
      if (n < n_end) {
        const int64_t bb = n / HW;
        const int p = static_cast<int>(n - bb * HW);
        colb[tid] = bb * x.sb;
        coli[tid] = p / W;
        colj[tid] = p % W;
      } else {
        colb[tid] = -1;
        coli[tid] = colj[tid] = 0;
      }
    }
    __syncthreads();
    PAN_UNROLL
    for (int e = tid; e < kBM * kBC; e += kThreads) {
      int m, kc;
      if (chan_fast) {
        m = e % kBM;
        kc = e / kBM;
      } else {
        kc = e % kBC;
        m = e / kBC;
      }
      U u = 0;
      const int64_t cb = colb[kc], rc = rowc[m];
      if (cb >= 0 && rc >= 0) {
        const int i = coli[kc] + rowdy[m], j = colj[kc] + rowdx[m];
        if (i >= 0 && i < H && j >= 0 && j < W) u = PrecTraits<P>::cvt(x.p[cb + rc + i * x.sh + j * x.sw]);
      }
      smem_put<P>(As, LDW, m, kc, u);
    }
    PAN_UNROLL
    for (int e = tid; e < BN * kBC; e += kThreads) {
      const int hh = e % BN, kc = e / BN;
      const int64_t n = nb + kc;
      U u = 0;
      if (n < n_end && h0 + hh < Hd) u = PrecTraits<P>::cvt(gpre[n * Hd + h0 + hh]);
      smem_put<P>(Bs, LDW, hh, kc, u);
    }
    __syncthreads();
    G::chunk(acc, As, a_row, Bs, wn * (BN / 2), lane);
  }

  float* dst = dw_part + static_cast<int64_t>(blockIdx.y) * M * Hd;
  const Fragment fr = Fragment::of_thread();
  fr.rows([&](int mf, int h, int row) {
    const int mg = m0 + row;
    if (mg >= M) return;
    fr.cols<BN>([&](int nf, int jn, int col) {
      if (h0 + col < Hd) dst[static_cast<int64_t>(mg) * Hd + h0 + col] = acc[mf][nf][2 * h + jn];
    });
  });
}

// ---------------------------------------------------------------------------------------------- launchers

template <int BN>
int wgrad_smem_bytes(int ldw) {
  return (kBM + BN) * ldw * 4 + (kBM + kBC) * 8 + (3 * kBM + 2 * kBC) * 4;
}

struct MlpShape {
  int64_t B, C, H, W, Hd, k;
};

MlpShape check_mlp(const char* op, const Tensor& x, const Tensor& query_bias, const Tensor& weight1,
                   const OptTensor& bias1, const Tensor& weight2) {
  check_x(op, x);
  TORCH_CHECK(weight1.dim() == 4, op, ": weight1 must have shape [Hd, C, k, k], got ", weight1.sizes());
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Hd = weight1.size(0), k = weight1.size(3);
  TORCH_CHECK(weight1.size(1) == C && weight1.size(2) == k && Hd >= 1, op, ": weight1 must have shape [Hd, C=", C,
              ", k, k], got ", weight1.sizes());
  TORCH_CHECK(k % 2 == 1 && k >= 1 && k <= 7, op, ": weight1 must have an odd kernel size k in 1..7, got k=", k);
  check_like(op, "weight1", weight1, x);
  check_like(op, "query_bias", query_bias, x);
  check_shape(op, "query_bias", query_bias, {B, Hd}, "[B, Hd]");
  check_like(op, "weight2", weight2, x);
  check_shape(op, "weight2", weight2, {Hd}, "[Hd]");
  if (bias1.has_value()) {
    check_like(op, "bias1", *bias1, x);
    check_shape(op, "bias1", *bias1, {Hd}, "[Hd]");
  }
  TORCH_CHECK(B * H * W < (int64_t(1) << 31) && C * k * k < (int64_t(1) << 31), op, ": x is too large, got ",
              x.sizes());
  return {B, C, H, W, Hd, k};
}

std::tuple<Tensor, Tensor> mlp_forward(const char* op, const Tensor& x, const Tensor& query_bias,
                                       const Tensor& weight1, const OptTensor& bias1, const Tensor& weight2,
                                       const OptTensor& bias2, bool gate) {
  const MlpShape sh = check_mlp(op, x, query_bias, weight1, bias1, weight2);
  if (bias2.has_value()) {
    check_like(op, "bias2", *bias2, x);
    TORCH_CHECK(bias2->numel() == 1, op, ": bias2 must be a 0-d tensor, got shape ", bias2->sizes());
  }
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  Tensor out = gate ? poisoned(at::empty_like(x)) : Tensor();
  Tensor s = poisoned(at::empty({sh.B, sh.H, sh.W}, x.options()));
  if (sh.B == 0) return {out, s};
  const int C = sh.C, H = sh.H, W = sh.W, Hd = sh.Hd, k = sh.k;
  const Tensor wp = weight1.permute({2, 3, 0, 1}).contiguous();  // [k*k, Hd, C]
  const Tensor qb = query_bias.contiguous(), w2 = weight2.contiguous();
  const Tensor b1 = bias1.has_value() ? bias1->contiguous() : Tensor();
  const Tensor b2 = bias2.has_value() ? bias2->contiguous() : Tensor();
  const TileGeom tg = choose_tiles(H, W, k);
  dispatch_prec(x, op, [&](auto ptag) {
    constexpr Prec P = decltype(ptag)::value;
    using T = scalar_of<P>;
    dispatch_bn(Hd, [&](auto btag) {
      constexpr int BN = decltype(btag)::value;
      const ConvArgs ca = make_conv_args(x.data_ptr(), x.stride(0), x.stride(1), x.stride(2), x.stride(3),
                                         wp.data_ptr(), C, Hd, H, W, k, tg);
      const int smem = conv_smem_bytes<P, BN>(tg.TH, tg.TW, k) + 3 * kBM * 4;
      auto kernel = attention_mlp_fwd_kernel<P, BN>;
      set_smem_limit<attention_mlp_fwd_kernel<P, BN>>(smem);
      const Out4<T> o = gate ? out4<T>(out) : Out4<T>{nullptr, 0, 0, 0, 0};
      PAN_LAUNCH(kernel, dim3(grid_1d(sh.B * ca.tiles_per_img, op)), dim3(kThreads), smem, ca,
                 static_cast<const T*>(qb.data_ptr()), b1.defined() ? static_cast<const T*>(b1.data_ptr()) : nullptr,
                 static_cast<const T*>(w2.data_ptr()), b2.defined() ? static_cast<const T*>(b2.data_ptr()) : nullptr,
                 o, static_cast<T*>(s.data_ptr()), gate ? 1 : 0);
    });
  });
  return {out, s};
}

Grads6 mlp_backward(const char* op, const Tensor* grad_out, const Tensor& grad_s, const Tensor& x,
                    const Tensor& query_bias, const Tensor& weight1, const OptTensor& bias1, const Tensor& weight2,
                    const Tensor* alpha) {
  const MlpShape sh = check_mlp(op, x, query_bias, weight1, bias1, weight2);
  const bool gate = grad_out != nullptr;
  const char* gs_name = gate ? "grad_alpha" : "grad_scores";
  check_like(op, gs_name, grad_s, x);
  check_shape(op, gs_name, grad_s, {sh.B, sh.H, sh.W}, "[B, H, W]");
  if (gate) {
    check_like(op, "grad_out", *grad_out, x);
    check_shape(op, "grad_out", *grad_out, x.sizes(), "[B, C, H, W]");
    check_like(op, "alpha", *alpha, x);
    check_shape(op, "alpha", *alpha, {sh.B, sh.H, sh.W}, "[B, H, W]");
  }
#ifndef PAN_EMULATE
  const c10::cuda::OptionalCUDAGuard guard(x.device());
#endif
  check_arch(op);
  Tensor dx = poisoned(at::empty_like(x));
  const auto opts = x.options();
  if (sh.B == 0)
    return {dx, at::zeros(query_bias.sizes(), opts), at::zeros(weight1.sizes(), opts), at::zeros({sh.Hd}, opts),
            at::zeros({sh.Hd}, opts), at::zeros({}, opts)};
  const int C = sh.C, H = sh.H, W = sh.W, Hd = sh.Hd, k = sh.k;
  const int64_t N = sh.B * H * W;
  const Tensor wp = weight1.permute({2, 3, 0, 1}).contiguous();                 // [k*k, Hd, C]
  const Tensor wpf = weight1.flip({2, 3}).permute({2, 3, 1, 0}).contiguous();   // [k*k, C, Hd], taps flipped
  const Tensor qb = query_bias.contiguous(), w2 = weight2.contiguous();
  const Tensor b1 = bias1.has_value() ? bias1->contiguous() : Tensor();
  const TileGeom tg = choose_tiles(H, W, k);
  const int64_t ntiles = static_cast<int64_t>(tg.tiles_x) * tg.tiles_y;
  const auto f32 = opts.dtype(at::kFloat);
  Tensor gpre = poisoned(at::empty({N, sh.Hd}, opts));
  Tensor dqb_part = poisoned(at::empty({sh.B, ntiles, sh.Hd}, f32));
  Tensor dw2_part = poisoned(at::empty({sh.B, ntiles, sh.Hd}, f32));
  Tensor db2_part = poisoned(at::empty({sh.B, ntiles}, f32));
  Tensor dw_part;

  dispatch_prec(x, op, [&](auto ptag) {
    constexpr Prec P = decltype(ptag)::value;
    using T = scalar_of<P>;
    const Strided4<T> go = gate ? strided4<T>(*grad_out) : Strided4<T>{nullptr, 0, 0, 0, 0};
    const Strided3<T> gs = strided3<T>(grad_s);
    const Strided3<T> al = gate ? strided3<T>(*alpha) : Strided3<T>{nullptr, 0, 0, 0};

    dispatch_bn(Hd, [&](auto btag) {  // kernel 1: recompute h, write g_pre and the small partials
      constexpr int BN = decltype(btag)::value;
      const ConvArgs ca = make_conv_args(x.data_ptr(), x.stride(0), x.stride(1), x.stride(2), x.stride(3),
                                         wp.data_ptr(), C, Hd, H, W, k, tg);
      const int smem = conv_smem_bytes<P, BN>(tg.TH, tg.TW, k) + (3 * kBM + 4 * BN) * 4;
      auto kernel = attention_mlp_bwd_pre_kernel<P, BN>;
      set_smem_limit<attention_mlp_bwd_pre_kernel<P, BN>>(smem);
      PAN_LAUNCH(kernel, dim3(grid_1d(sh.B * ntiles, op)), dim3(kThreads), smem, ca,
                 static_cast<const T*>(qb.data_ptr()), b1.defined() ? static_cast<const T*>(b1.data_ptr()) : nullptr,
                 static_cast<const T*>(w2.data_ptr()), go, gs, al, gate ? 1 : 0, static_cast<T*>(gpre.data_ptr()),
                 dqb_part.data_ptr<float>(), dw2_part.data_ptr<float>(), db2_part.data_ptr<float>());
    });

    dispatch_bn(Hd, [&](auto btag) {  // kernel 2: dW1 partials, split over pixels
      constexpr int BN = decltype(btag)::value;
      const int M = k * k * C;
      const int mtiles = (M + kBM - 1) / kBM, ntl = (Hd + BN - 1) / BN;
      const int64_t tiles = static_cast<int64_t>(mtiles) * ntl;
      const int64_t target = 4 * static_cast<int64_t>(sm_count());
      int64_t split = std::max<int64_t>(1, std::min<int64_t>((N + 4 * kBC - 1) / (4 * kBC), (target + tiles - 1) / tiles));
      const int64_t nps = ((N + split - 1) / split + kBC - 1) / kBC * kBC;
      split = (N + nps - 1) / nps;
      dw_part = poisoned(at::empty({split, M, sh.Hd}, f32));
      const int smem = wgrad_smem_bytes<BN>(WarpGemm<P, BN>::LDW);
      auto kernel = attention_mlp_bwd_weight_kernel<P, BN>;
      set_smem_limit<attention_mlp_bwd_weight_kernel<P, BN>>(smem);
      PAN_LAUNCH(kernel, dim3(grid_1d(tiles, op), static_cast<unsigned>(split)), dim3(kThreads), smem,
                 strided4<T>(x), static_cast<const T*>(gpre.data_ptr()), dw_part.data_ptr<float>(), C, H, W, Hd, k,
                 N, nps, mtiles, x.stride(1) < x.stride(3) ? 1 : 0);
    });

    dispatch_bn(C, [&](auto btag) {  // kernel 3: dx
      constexpr int BN = decltype(btag)::value;
      const ConvArgs ca = make_conv_args(gpre.data_ptr(), static_cast<int64_t>(H) * W * Hd, 1,
                                         static_cast<int64_t>(W) * Hd, Hd, wpf.data_ptr(), Hd, C, H, W, k, tg);
      const int smem = conv_smem_bytes<P, BN>(tg.TH, tg.TW, k);
      auto kernel = attention_mlp_bwd_input_kernel<P, BN>;
      set_smem_limit<attention_mlp_bwd_input_kernel<P, BN>>(smem);
      PAN_LAUNCH(kernel, dim3(grid_1d(sh.B * ntiles, op)), dim3(kThreads), smem, ca, go, al, gate ? 1 : 0,
                 out4<T>(dx));
    });
  });

  const auto dtype = x.scalar_type();
  const Tensor dqb = dqb_part.sum(1);
  const Tensor dw1 = dw_part.sum(0).view({k, k, C, Hd}).permute({3, 2, 0, 1}).to(dtype).contiguous();
  return {dx, dqb.to(dtype), dw1, dqb.sum(0).to(dtype), dw2_part.sum({0, 1}).to(dtype), db2_part.sum().to(dtype)};
}

}  // namespace

std::tuple<Tensor, Tensor> progressive_attention_cuda(const Tensor& x, const Tensor& query_bias,
                                                      const Tensor& weight1, const OptTensor& bias1,
                                                      const Tensor& weight2, const OptTensor& bias2) {
  return mlp_forward("progressive_attention_cuda", x, query_bias, weight1, bias1, weight2, bias2, true);
}

Tensor attention_scores_cuda(const Tensor& x, const Tensor& query_bias, const Tensor& weight1,
                             const OptTensor& bias1, const Tensor& weight2, const OptTensor& bias2) {
  return std::get<1>(mlp_forward("attention_scores_cuda", x, query_bias, weight1, bias1, weight2, bias2, false));
}

Grads6 progressive_attention_cuda_backward(const Tensor& grad_out, const Tensor& grad_alpha, const Tensor& x,
                                           const Tensor& query_bias, const Tensor& weight1, const OptTensor& bias1,
                                           const Tensor& weight2, const Tensor& alpha) {
  return mlp_backward("progressive_attention_cuda_backward", &grad_out, grad_alpha, x, query_bias, weight1, bias1,
                      weight2, &alpha);
}

Grads6 attention_scores_cuda_backward(const Tensor& grad_scores, const Tensor& x, const Tensor& query_bias,
                                      const Tensor& weight1, const OptTensor& bias1, const Tensor& weight2) {
  return mlp_backward("attention_scores_cuda_backward", nullptr, grad_scores, x, query_bias, weight1, bias1,
                      weight2, nullptr);
}

}  // namespace pan
