// Shared device code of the PAN kernels: precision policies, tensor-core fragments, the implicit-convolution
// GEMM main loop (a k x k gather of a 2-D pixel tile with its halo, staged in shared memory), block reductions,
// and host-side launch helpers. Compiled by nvcc, or by a host compiler with PAN_EMULATE (csrc/emu/).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#ifdef PAN_EMULATE
#include "emu/emu_runtime.h"
#define PAN_DYNAMIC_SMEM(name) char* name = pan_emu::dynamic_smem()
#define PAN_LAUNCH(kernel, grid, block, smem, ...) pan_emu::launch(kernel, grid, block, smem, __VA_ARGS__)
#define PAN_UNROLL
#else
// Only c10/cuda headers: ATen/cuda/CUDAContext.h would also need the cuBLAS/cuSPARSE headers at build time.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#define PAN_DYNAMIC_SMEM(name) extern __shared__ __align__(16) char name[]
// Launches on the current stream (CUDA-graph capture, torch.compile "reduce-overhead"), never the legacy default.
#define PAN_LAUNCH(kernel, grid, block, smem, ...)                                               \
  do {                                                                                           \
    kernel<<<grid, block, smem, c10::cuda::getCurrentCUDAStream().stream()>>>(__VA_ARGS__);      \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                              \
  } while (0)
#define PAN_UNROLL _Pragma("unroll")
#endif

namespace pan {

constexpr int kThreads = 128;  // 4 warps per CTA, arranged 2 (pixels) x 2 (output columns)
constexpr int kBM = 64;        // GEMM rows (pixels) per CTA
constexpr int kBC = 32;        // reduction (input-channel) elements per shared-memory chunk
constexpr int kPad = 4;        // padding words per shared-memory row: conflict-free fragment loads

// Operand precision of the GEMMs. Accumulation is always fp32.
enum class Prec { kFp32, kTf32, kBf16, kFp16 };

template <Prec P>
struct PrecTraits;
template <>
struct PrecTraits<Prec::kFp32> {  // exact fp32 FMA (no tensor cores)
  using T = float;
  using U = uint32_t;
  static constexpr int kPerWord = 1;
  __device__ static U cvt(T v) { return __float_as_uint(v); }
};
template <>
struct PrecTraits<Prec::kTf32> {  // operands rounded to TF32 once, when they are staged in shared memory
  using T = float;
  using U = uint32_t;
  static constexpr int kPerWord = 1;
  __device__ static U cvt(T v) {
#ifdef PAN_EMULATE
    return pan_emu::to_tf32(v);
#else
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
    return r;
#endif
  }
};
template <>
struct PrecTraits<Prec::kBf16> {
  using T = c10::BFloat16;
  using U = uint16_t;
  static constexpr int kPerWord = 2;
  __device__ static U cvt(T v) { return v.x; }
};
template <>
struct PrecTraits<Prec::kFp16> {
  using T = c10::Half;
  using U = uint16_t;
  static constexpr int kPerWord = 2;
  __device__ static U cvt(T v) { return v.x; }
};

template <Prec P>
using scalar_of = typename PrecTraits<P>::T;

// d += a * b for one m16n8 tile: m16n8k8 (TF32) or m16n8k16 (BF16/FP16); fragments as in the PTX ISA.
template <Prec P>
__device__ __forceinline__ void mma_16n8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef PAN_EMULATE
  pan_emu::mma(P == Prec::kTf32 ? 0 : (P == Prec::kBf16 ? 1 : 2), d, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (P == Prec::kTf32) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else if constexpr (P == Prec::kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  __trap();  // the host checks compute capability >= 8.0 before launching
#endif
}

// The warp-level GEMM on shared-memory tiles stored K-contiguous in 32-bit words, LDW words per row.
// The warp owns 32 rows (2 m-fragments) x BN/2 columns (NF n-fragments of 8). Thread (g = lane/4, t = lane%4)
// accumulates acc[mf][nf][e]: row = 16 mf + g + 8 (e >= 2), column = 8 nf + 2 t + (e % 2).
template <Prec P, int BN>
struct WarpGemm {
  static constexpr int NF = BN / 16;
  static constexpr int KW = kBC / PrecTraits<P>::kPerWord;  // words per row and chunk
  static constexpr int LDW = KW + kPad;

  // a_row[mf][h]: shared-memory row of the A operand for the thread's rows g (+8 h); b_row0: first B row (column)
  // of the warp. One chunk of kBC reduction elements.
  __device__ static void chunk(float (&acc)[2][NF][4], const uint32_t* A, const int (&a_row)[2][2],
                               const uint32_t* Bt, int b_row0, int lane) {
    const int g = lane >> 2, t = lane & 3;
    PAN_UNROLL
    for (int kw = 0; kw < KW; kw += 8) {
      if constexpr (P == Prec::kFp32) {
        // exact fp32: every thread computes its own accumulator elements with FMAs, reading whole rows
        float ar[2][2][8];
        PAN_UNROLL
        for (int mf = 0; mf < 2; ++mf)
          PAN_UNROLL
          for (int h = 0; h < 2; ++h) {
            const float* src = reinterpret_cast<const float*>(A) + a_row[mf][h] * LDW + kw;
            PAN_UNROLL
            for (int q = 0; q < 8; ++q) ar[mf][h][q] = src[q];
          }
        PAN_UNROLL
        for (int nf = 0; nf < NF; ++nf) {
          PAN_UNROLL
          for (int j = 0; j < 2; ++j) {
            const float* src = reinterpret_cast<const float*>(Bt) + (b_row0 + nf * 8 + 2 * t + j) * LDW + kw;
            float br[8];
            PAN_UNROLL
            for (int q = 0; q < 8; ++q) br[q] = src[q];
            PAN_UNROLL
            for (int mf = 0; mf < 2; ++mf)
              PAN_UNROLL
              for (int h = 0; h < 2; ++h) {
                float s = acc[mf][nf][2 * h + j];
                PAN_UNROLL
                for (int q = 0; q < 8; ++q) s = fmaf(ar[mf][h][q], br[q], s);
                acc[mf][nf][2 * h + j] = s;
              }
          }
        }
      } else {
        uint32_t af[2][4];
        PAN_UNROLL
        for (int mf = 0; mf < 2; ++mf) {
          const uint32_t* r0 = A + a_row[mf][0] * LDW + kw + t;
          const uint32_t* r1 = A + a_row[mf][1] * LDW + kw + t;
          af[mf][0] = r0[0];
          af[mf][1] = r1[0];
          af[mf][2] = r0[4];
          af[mf][3] = r1[4];
        }
        PAN_UNROLL
        for (int nf = 0; nf < NF; ++nf) {
          const uint32_t* rb = Bt + (b_row0 + nf * 8 + g) * LDW + kw + t;
          const uint32_t bf[2] = {rb[0], rb[4]};
          PAN_UNROLL
          for (int mf = 0; mf < 2; ++mf) mma_16n8<P>(acc[mf][nf], af[mf], bf);
        }
      }
    }
  }
};

// Stores one operand element (already converted) at (row, col) of a K-contiguous shared-memory tile.
template <Prec P>
__device__ __forceinline__ void smem_put(uint32_t* base, int ldw, int row, int col, typename PrecTraits<P>::U u) {
  reinterpret_cast<typename PrecTraits<P>::U*>(base)[row * ldw * PrecTraits<P>::kPerWord + col] = u;
}

// An implicit convolution "pixels x Nout = sum_{tap, c} in[b, c, pixel + tap] Wp[tap, n, c]" over a TH x TW pixel
// tile (TH * TW = kBM), zero padding k / 2. Used by the forward (in = x) and the data gradient (in = g_pre,
// flipped taps), and with k = 1 by the classifier logits of the hard-attention head.
struct ConvArgs {
  const void* in;  // [B, Cin, H, W] with strides sb, sc, sh, sw (elements)
  int64_t sb, sc, sh, sw;
  const void* wp;  // [k*k, Nout, Cin] contiguous
  int Cin, Nout, H, W, k;
  int TH, TW, tiles_x, tiles_per_img;
  int chan_fast;  // 1 when channels are the fastest-varying dimension of `in` (channels_last): loads go along c
};

__host__ __device__ inline int conv_halo_slots(int TH, int TW, int k) { return (TH + k - 1) * (TW + k - 1); }

// Shared memory of the conv main loop, in bytes: slot offsets (int64), halo tile, double-buffered weight tile.
template <Prec P, int BN>
__host__ __device__ inline int conv_smem_bytes(int TH, int TW, int k) {
  const int slots = conv_halo_slots(TH, TW, k);
  const int off_bytes = (slots * 8 + 15) / 16 * 16;
  return off_bytes + (slots + 2 * BN) * WarpGemm<P, BN>::LDW * 4;
}

// Where a thread's accumulator elements sit in the CTA's kBM x BN tile (4 warps: 2 along rows (wm) x 2 along
// columns (wn); see WarpGemm): acc[mf][nf][2 h + jn] is tile row 32 wm + 16 mf + g + 8 h and tile column
// (BN / 2) wn + 8 nf + 2 t + jn. Every kernel walks its fragment with these two visitors instead of spelling the
// index math out.
struct Fragment {
  int wm, wn, g, t;

  __device__ static Fragment of_thread() {
    const int tid = threadIdx.x, lane = tid & 31;
    return {(tid >> 5) & 1, tid >> 6, lane >> 2, lane & 3};
  }
  // f(mf, h, row) for the thread's four tile rows
  template <class F>
  __device__ __forceinline__ void rows(F&& f) const {
    PAN_UNROLL
    for (int mf = 0; mf < 2; ++mf)
      PAN_UNROLL
      for (int h = 0; h < 2; ++h) f(mf, h, wm * 32 + mf * 16 + g + 8 * h);
  }
  // f(nf, jn, col) for the thread's BN / 8 tile columns
  template <int BN, class F>
  __device__ __forceinline__ void cols(F&& f) const {
    PAN_UNROLL
    for (int nf = 0; nf < BN / 16; ++nf)
      PAN_UNROLL
      for (int jn = 0; jn < 2; ++jn) f(nf, jn, wn * (BN / 2) + nf * 8 + 2 * t + jn);
  }
};

// Per-CTA state of the conv main loop; everything lives in dynamic shared memory starting at `smem`.
template <Prec P, int BN>
struct ConvTile {
  using G = WarpGemm<P, BN>;
  using T = typename PrecTraits<P>::T;
  static constexpr int LDW = G::LDW;

  const ConvArgs& ca;
  int b, i0, j0;          // sample and tile origin
  int HTW, nslots;        // halo width and slot count
  int64_t* slot_off;      // [nslots] offset of the slot's pixel in `in` (i*sh + j*sw), -1 outside the image
  uint32_t* halo;         // [nslots][LDW]
  uint32_t* wbuf;         // [2][BN][LDW]
  int a_base[2][2];       // halo slot of the thread's rows at tap (0, 0)
  int buf = 0;            // weight buffer in use
  bool halo_loaded = false;

  __device__ ConvTile(const ConvArgs& args, char* smem) : ca(args) {
    const int tile = blockIdx.x % ca.tiles_per_img;
    b = blockIdx.x / ca.tiles_per_img;
    i0 = (tile / ca.tiles_x) * ca.TH;
    j0 = (tile % ca.tiles_x) * ca.TW;
    HTW = ca.TW + ca.k - 1;
    nslots = conv_halo_slots(ca.TH, ca.TW, ca.k);
    slot_off = reinterpret_cast<int64_t*>(smem);
    halo = reinterpret_cast<uint32_t*>(smem + (nslots * 8 + 15) / 16 * 16);
    wbuf = halo + nslots * LDW;
    const int r = ca.k / 2;
    for (int s = threadIdx.x; s < nslots; s += kThreads) {
      const int i = i0 - r + s / HTW, j = j0 - r + s % HTW;
      slot_off[s] = (i >= 0 && i < ca.H && j >= 0 && j < ca.W) ? i * ca.sh + j * ca.sw : int64_t(-1);
    }
    const int lane = threadIdx.x & 31, wm = (threadIdx.x >> 5) & 1;
    for (int mf = 0; mf < 2; ++mf)
      for (int h = 0; h < 2; ++h) {
        const int m = wm * 32 + mf * 16 + (lane >> 2) + 8 * h;
        a_base[mf][h] = (m / ca.TW) * HTW + m % ca.TW;
      }
    // slot_off is first read after the __syncthreads() that opens the first halo load
  }

  // Pixel (i, j) of GEMM row m; valid when inside the image.
  __device__ bool row_pixel(int m, int& i, int& j) const {
    i = i0 + m / ca.TW;
    j = j0 + m % ca.TW;
    return i < ca.H && j < ca.W;
  }

  // Loads in batches of kBatch independent global reads per thread before the shared-memory stores, so a thread
  // waits for memory once per batch instead of once per element.
  __device__ void load_halo(int c0) {
    constexpr int kBatch = 8;
    using U = typename PrecTraits<P>::U;
    const T* in = static_cast<const T*>(ca.in) + b * ca.sb;
    const int tid = threadIdx.x;
    if (!ca.chan_fast) {  // consecutive threads take consecutive slots (pixels): coalesced along rows of x
      for (int s = tid; s < nslots; s += kThreads) {
        const int64_t off = slot_off[s];
        for (int c = 0; c < kBC; c += kBatch) {
          U u[kBatch];
          PAN_UNROLL
          for (int q = 0; q < kBatch; ++q) {
            const int cc = c0 + c + q;
            u[q] = (off >= 0 && cc < ca.Cin) ? PrecTraits<P>::cvt(in[cc * ca.sc + off]) : U(0);
          }
          PAN_UNROLL
          for (int q = 0; q < kBatch; ++q) smem_put<P>(halo, LDW, s, c + q, u[q]);
        }
      }
    } else {  // consecutive threads take consecutive channels: coalesced for channels_last
      constexpr int kSlotsPerPass = kThreads / kBC;
      const int c = tid % kBC, cc = c0 + c;
      const int64_t coff = cc * ca.sc;
      for (int s0 = tid / kBC; s0 < nslots; s0 += kSlotsPerPass * kBatch) {
        U u[kBatch];
        PAN_UNROLL
        for (int q = 0; q < kBatch; ++q) {
          const int s = s0 + q * kSlotsPerPass;
          const int64_t off = s < nslots ? slot_off[s] : int64_t(-1);
          u[q] = (off >= 0 && cc < ca.Cin) ? PrecTraits<P>::cvt(in[coff + off]) : U(0);
        }
        PAN_UNROLL
        for (int q = 0; q < kBatch; ++q)
          if (s0 + q * kSlotsPerPass < nslots) smem_put<P>(halo, LDW, s0 + q * kSlotsPerPass, c, u[q]);
      }
    }
  }

  __device__ void load_weights(uint32_t* dst, int tap, int c0, int n0) {
    const T* w = static_cast<const T*>(ca.wp) + (static_cast<int64_t>(tap) * ca.Nout + n0) * ca.Cin + c0;
    PAN_UNROLL
    for (int e = threadIdx.x; e < BN * kBC; e += kThreads) {
      const int n = e / kBC, c = e % kBC;
      typename PrecTraits<P>::U u = 0;
      if (n0 + n < ca.Nout && c0 + c < ca.Cin) u = PrecTraits<P>::cvt(w[static_cast<int64_t>(n) * ca.Cin + c]);
      smem_put<P>(dst, LDW, n, c, u);
    }
  }

  // acc = sum over taps and input channels for output columns [n0, n0 + BN). Contains __syncthreads(): every
  // thread of the CTA must call it. A halo that holds every input channel (Cin <= kBC) is loaded only once.
  __device__ void run(float (&acc)[2][G::NF][4], int n0) {
    for (int mf = 0; mf < 2; ++mf)
      for (int nf = 0; nf < G::NF; ++nf)
        for (int e = 0; e < 4; ++e) acc[mf][nf][e] = 0.f;
    const int lane = threadIdx.x & 31, wn = threadIdx.x >> 6;
    const int kk = ca.k * ca.k;
    for (int c0 = 0; c0 < ca.Cin; c0 += kBC) {
      if (!(halo_loaded && ca.Cin <= kBC)) {
        __syncthreads();  // every warp is done with the previous halo (and slot_off is visible)
        load_halo(c0);
        halo_loaded = true;
      }
      for (int tap = 0; tap < kk; ++tap) {
        uint32_t* wt = wbuf + buf * BN * LDW;
        load_weights(wt, tap, c0, n0);
        __syncthreads();  // halo and weight tile visible; the other buffer is free again
        const int toff = (tap / ca.k) * HTW + tap % ca.k;
        const int a_row[2][2] = {{a_base[0][0] + toff, a_base[0][1] + toff},
                                 {a_base[1][0] + toff, a_base[1][1] + toff}};
        G::chunk(acc, halo, a_row, wt, wn * (BN / 2), lane);
        buf ^= 1;
      }
    }
  }
};

// ------------------------------------------------------------------------------------------ small helpers

__device__ __forceinline__ float relu_nan(float v) { return v < 0.f ? 0.f : v; }  // keeps NaN

// Sum each of a thread's 4 accumulator rows (mma fragment rows g and g+8 of both m-fragments) over the 4 lanes of
// its quad, and store one partial per row and warp column wn: red[wn * kBM + row], row = wm*32 + mf*16 + g + 8*h.
__device__ __forceinline__ void store_row_partials(float (&rows)[2][2], float* red) {
  const Fragment fr = Fragment::of_thread();
  fr.rows([&](int mf, int h, int row) {
    float v = rows[mf][h];
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    if (fr.t == 0) red[fr.wn * kBM + row] = v;
  });
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}

// Running logsumexp (m, l): value = m + log(l). NaN enters l and propagates; -inf values add nothing.
__device__ __forceinline__ void lse_merge(float& m, float& l, float m2, float l2) {
  const float mn = fmaxf(m, m2);
  const float safe = mn == -INFINITY ? 0.f : mn;
  l = l * expf(m - safe) + l2 * expf(m2 - safe);
  m = mn;
}
__device__ __forceinline__ void lse_push(float& m, float& l, float v) { lse_merge(m, l, v, 1.f); }

// Merge the running logsumexp (m, l) of one fragment column over the 8 row groups g of the warp (lanes 4 apart) and
// let lane g == 0 store it: the column's logsumexp over the warp's 32 rows, as (max, sum) at m_out, l_out.
__device__ __forceinline__ void column_lse_store(float m, float l, float* m_out, float* l_out, int g) {
  for (int s = 4; s < 32; s <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, s), l2 = __shfl_xor_sync(0xffffffffu, l, s);
    lse_merge(m, l, m2, l2);
  }
  if (g == 0) {
    *m_out = m;
    *l_out = l;
  }
}
__device__ __forceinline__ float lse_value(float m, float l) { return m + logf(l); }

// Deterministic CTA-wide sum; every thread gets the result. scratch: >= kThreads / 32 floats.
__device__ inline float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

// CTA-wide logsumexp of per-thread running (m, l); every thread gets the value. scratch: >= 2 * kThreads / 32.
__device__ inline float block_lse(float m, float l, float* scratch) {
  for (int s = 16; s > 0; s >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, s);
    const float l2 = __shfl_xor_sync(0xffffffffu, l, s);
    lse_merge(m, l, m2, l2);
  }
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    scratch[2 * warp] = m;
    scratch[2 * warp + 1] = l;
  }
  __syncthreads();
  float mt = -INFINITY, lt = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) lse_merge(mt, lt, scratch[2 * w], scratch[2 * w + 1]);
  __syncthreads();
  return lse_value(mt, lt);
}

template <typename T>
struct Strided2 {  // [B, N]
  const T* p;
  int64_t sb, sn;
  __device__ float at(int b, int n) const { return static_cast<float>(p[b * sb + n * sn]); }
};
template <typename T>
struct Strided3 {  // [B, H, W]
  const T* p;
  int64_t sb, sh, sw;
  __device__ float at(int b, int i, int j) const { return static_cast<float>(p[b * sb + i * sh + j * sw]); }
};
template <typename T>
struct Strided4 {  // [B, C, H, W]
  const T* p;
  int64_t sb, sc, sh, sw;
  __device__ float at(int b, int c, int i, int j) const {
    return static_cast<float>(p[b * sb + c * sc + i * sh + j * sw]);
  }
};
template <typename T>
struct Out4 {
  T* p;
  int64_t sb, sc, sh, sw;
};

// ------------------------------------------------------------------------------------------------ host side

template <typename T>
Strided2<T> strided2(const at::Tensor& t) {
  return {static_cast<const T*>(t.data_ptr()), t.stride(0), t.stride(1)};
}
template <typename T>
Strided3<T> strided3(const at::Tensor& t) {
  return {static_cast<const T*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2)};
}
template <typename T>
Strided4<T> strided4(const at::Tensor& t) {
  return {static_cast<const T*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}
template <typename T>
Out4<T> out4(const at::Tensor& t) {
  return {static_cast<T*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

struct TileGeom {
  int TH, TW, tiles_x, tiles_y;
};

// The TH x TW tile (TH * TW = kBM, TW in {4, 8, 16, 32}) that covers H x W with the fewest computed pixels, then
// the smallest halo, then the widest rows.
inline TileGeom choose_tiles(int H, int W, int k) {
  TileGeom best{0, 0, 0, 0};
  int64_t best_px = 0, best_halo = 0;
  for (int TW = 32; TW >= 4; TW /= 2) {
    const int TH = kBM / TW;
    const int tx = (W + TW - 1) / TW, ty = (H + TH - 1) / TH;
    const int64_t px = static_cast<int64_t>(tx) * ty;
    const int64_t halo = conv_halo_slots(TH, TW, k);
    if (best.TW == 0 || px < best_px || (px == best_px && halo < best_halo)) {
      best = {TH, TW, tx, ty};
      best_px = px;
      best_halo = halo;
    }
  }
  return best;
}

inline ConvArgs make_conv_args(const void* in, int64_t sb, int64_t sc, int64_t sh, int64_t sw, const void* wp,
                               int Cin, int Nout, int H, int W, int k, const TileGeom& tg) {
  ConvArgs a;
  a.in = in;
  a.sb = sb;
  a.sc = sc;
  a.sh = sh;
  a.sw = sw;
  a.wp = wp;
  a.Cin = Cin;
  a.Nout = Nout;
  a.H = H;
  a.W = W;
  a.k = k;
  a.TH = tg.TH;
  a.TW = tg.TW;
  a.tiles_x = tg.tiles_x;
  a.tiles_per_img = tg.tiles_x * tg.tiles_y;
  a.chan_fast = sc < sw ? 1 : 0;
  return a;
}

// TF32 follows torch.backends.cudnn.allow_tf32, as PyTorch's own convolutions do.
inline bool allow_tf32() { return at::globalContext().allowTF32CuDNN(); }

// A device attribute of the current device, queried once per device (no synchronisation involved).
inline int device_attribute(int which) {
#ifdef PAN_EMULATE
  return which == 0 ? 8 : 2;
#else
  constexpr int kMaxDevices = 64;
  static int cache[2][kMaxDevices] = {};
  const int dev = c10::cuda::current_device();
  int* slot = dev < kMaxDevices ? &cache[which][dev] : nullptr;
  if (slot != nullptr && *slot > 0) return *slot;
  int value = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(
      &value, which == 0 ? cudaDevAttrComputeCapabilityMajor : cudaDevAttrMultiProcessorCount, dev));
  if (slot != nullptr) *slot = value;
  return value;
#endif
}
inline int sm_count() { return device_attribute(1); }

// Kernels that need more than the default 48 KiB of dynamic shared memory must opt in, once per kernel and device.
// Templated on the kernel itself: kernels of one signature (TF32 and exact fp32, say) each get their own flags.
template <auto Kernel>
inline void set_smem_limit(int bytes) {
#ifndef PAN_EMULATE
  if (bytes <= 48 * 1024) return;
  constexpr int kMaxDevices = 64;
  static int done[kMaxDevices] = {};  // the largest size set so far, per device
  const int dev = c10::cuda::current_device();
  if (dev < kMaxDevices && done[dev] >= bytes) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  if (dev < kMaxDevices) done[dev] = bytes;
#else
  (void)bytes;
#endif
}

template <Prec P>
struct PrecTag {
  static constexpr Prec value = P;
};
template <int N>
struct IntTag {
  static constexpr int value = N;
};

// Calls f(PrecTag<P>) for x's dtype: fp32 -> TF32 tensor cores when torch.backends.cudnn.allow_tf32 (as
// PyTorch's convolutions) and the kernel has tensor cores, else exact fp32 FMA; bf16 and fp16 -> their PrecTag.
template <typename F>
inline void dispatch_prec(const at::Tensor& x, const char* op, F&& f, bool tensor_cores = true) {
  switch (x.scalar_type()) {
    case at::kFloat:
      if (tensor_cores && allow_tf32())
        f(PrecTag<Prec::kTf32>{});
      else
        f(PrecTag<Prec::kFp32>{});
      break;
    case at::kBFloat16:
      f(PrecTag<Prec::kBf16>{});
      break;
    case at::kHalf:
      f(PrecTag<Prec::kFp16>{});
      break;
    default:
      TORCH_CHECK(false, op, ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
  }
}

// Calls f(PrecTag<P>) on the raw element type only (kernels without tensor cores).
template <typename F>
inline void dispatch_dtype(const at::Tensor& x, const char* op, F&& f) {
  dispatch_prec(x, op, std::forward<F>(f), /*tensor_cores=*/false);
}

// Output-column block of the GEMMs: 32 when the product is narrow (Hd = 32 at MREF, A = 5), else 64.
template <typename F>
inline void dispatch_bn(int n, F&& f) {
  if (n <= 32)
    f(IntTag<32>{});
  else
    f(IntTag<64>{});
}

inline bool on_kernel_device(const at::Tensor& t) {
#ifdef PAN_EMULATE
  return t.is_cpu();
#else
  return t.is_cuda();
#endif
}

// Shared checks: tensor on the kernel's device, the dtype and device of x.
inline void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK(on_kernel_device(t), op, ": ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " must have the dtype of x (", x.scalar_type(),
              "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " must be on the device of x (", x.device(), "), got ",
              t.device());
}

inline void check_shape(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef expected,
                        const char* doc) {
  TORCH_CHECK(t.sizes() == expected, op, ": ", name, " must have shape ", doc, " = ", expected, ", got ", t.sizes());
}

inline void check_x(const char* op, const at::Tensor& x) {
  TORCH_CHECK(on_kernel_device(x), op, ": x must be a CUDA tensor, got device ", x.device());
  TORCH_CHECK(x.dim() == 4, op, ": x must have shape [B, C, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(1) >= 1 && x.size(2) >= 1 && x.size(3) >= 1, op,
              ": x must have shape [B, C, H, W] with C, H, W >= 1, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              op, ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
}

// The heads' checks: scores (or their gradient) [B, H, W] like x; the classifier [A, C] (+ [A]); returns A.
inline void check_scores(const char* op, const char* name, const at::Tensor& s, const at::Tensor& x) {
  check_like(op, name, s, x);
  check_shape(op, name, s, {x.size(0), x.size(2), x.size(3)}, "[B, H, W]");
}

inline int64_t check_classifier(const char* op, const at::Tensor& x, const at::Tensor& cls_weight,
                                const std::optional<at::Tensor>& cls_bias) {
  check_like(op, "cls_weight", cls_weight, x);
  TORCH_CHECK(cls_weight.dim() == 2 && cls_weight.size(1) == x.size(1) && cls_weight.size(0) >= 1, op,
              ": cls_weight must have shape [A, C=", x.size(1), "] with A >= 1, got ", cls_weight.sizes());
  const int64_t A = cls_weight.size(0);
  if (cls_bias.has_value()) {
    check_like(op, "cls_bias", *cls_bias, x);
    check_shape(op, "cls_bias", *cls_bias, {A}, "[A]");
  }
  return A;
}

// The saved statistics of a hard marginal: float32 [B, cols] on the device of x.
inline void check_stats(const char* op, const at::Tensor& stats, const at::Tensor& x, int64_t cols, const char* doc) {
  TORCH_CHECK(on_kernel_device(stats) && stats.device() == x.device(), op,
              ": stats must be on the device of x (", x.device(), "), got ", stats.device());
  TORCH_CHECK(stats.scalar_type() == at::kFloat, op, ": stats must be float32, got ", stats.scalar_type());
  check_shape(op, "stats", stats, {x.size(0), cols}, doc);
}

// The classifier side of a hard marginal's backward from the fp32 logit gradients gz [B*H*W, A]: writes
// dx = gz Wc into dx (any layout) and returns (dWc = gz^T x, dbc = sum gz) in x's dtype; plain fp32 matmuls.
inline std::tuple<at::Tensor, at::Tensor> marginal_classifier_grads(const at::Tensor& gz, const at::Tensor& x,
                                                                   const at::Tensor& wc, at::Tensor& dx) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  dx.copy_(at::matmul(gz, wc.to(at::kFloat)).view({B, H, W, C}).permute({0, 3, 1, 2}));
  const at::Tensor x_rows = x.permute({0, 2, 3, 1}).reshape({B * H * W, C}).to(at::kFloat);
  return {at::matmul(gz.t(), x_rows).to(x.scalar_type()), gz.sum(0).to(x.scalar_type())};
}

// Run after the device guard is set: the kernels use mma.sync (sm_80+).
inline void check_arch(const char* op) {
  const int major = device_attribute(0);
  TORCH_CHECK(major >= 8, op, ": the CUDA backend needs a GPU of compute capability >= 8.0 (mma.sync), got ", major,
              ".x");
}

// PAN_CUDA_POISON=1 (tests): every output and workspace the extension allocates starts as NaN, so a kernel that
// leaves part of one unwritten fails a test instead of passing on whatever the allocator returned.
inline at::Tensor poisoned(at::Tensor t) {
  const char* v = std::getenv("PAN_CUDA_POISON");
  if (v != nullptr && v[0] == '1' && t.is_floating_point() && t.numel() > 0)
    t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

inline unsigned grid_1d(int64_t n, const char* op) {
  TORCH_CHECK(n <= std::numeric_limits<int>::max(), op, ": the input is too large (", n, " CTAs)");
  return static_cast<unsigned>(n);
}

}  // namespace pan
