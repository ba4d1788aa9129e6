// A tiny CPU emulator of the CUDA features the kernels in csrc/ use, so the very same kernel code can be run
// and tested on a machine without a GPU (csrc/emu/emu_ops.cpp, tests/test_cuda_extension.py).
//
// Every CUDA thread of a block is a ucontext fiber; one OS thread runs the fibers of a block in turn.
// __syncthreads() and the warp collectives (__shfl_xor_sync, mma.sync) are barriers: a fiber yields until every
// thread of its block (or warp) has arrived. A barrier that can never complete (divergent __syncthreads, a warp
// collective executed by part of a warp) is reported as an error instead of hanging.
// The mma emulation decodes the fragment layouts of the PTX ISA (mma.m16n8k8 .tf32, mma.m16n8k16 .f16/.bf16)
// independently of the loaders in common.cuh, so it checks them.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

namespace pan_emu {

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

constexpr int kWarp = 32;
constexpr int kXWords = 16;  // exchange words per lane

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  int state = 0;  // 0 runnable, 1 waiting at the block barrier, 2 waiting at its warp barrier, 3 finished
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t sched;
  int cur = 0;
  int nthreads = 0;
  int block_arrived = 0;
  std::vector<int> warp_arrived;
  std::vector<uint32_t> xbuf;  // [warp][lane][kXWords]
  std::vector<char> smem;
  std::function<void()> body;
};

inline Block* g_block = nullptr;

inline void yield_to_scheduler() {
  Block& B = *g_block;
  swapcontext(&B.fibers[B.cur].ctx, &B.sched);
}

inline void syncthreads() {
  Block& B = *g_block;
  if (++B.block_arrived == B.nthreads) {
    B.block_arrived = 0;
    for (auto& f : B.fibers)
      if (f.state == 1) f.state = 0;
    return;
  }
  B.fibers[B.cur].state = 1;
  yield_to_scheduler();
}

inline void syncwarp() {
  Block& B = *g_block;
  const int w = B.cur / kWarp;
  if (++B.warp_arrived[w] == kWarp) {
    B.warp_arrived[w] = 0;
    for (int l = 0; l < kWarp; ++l)
      if (B.fibers[w * kWarp + l].state == 2) B.fibers[w * kWarp + l].state = 0;
    return;
  }
  B.fibers[B.cur].state = 2;
  yield_to_scheduler();
}

inline uint32_t* lane_words(int lane) {
  Block& B = *g_block;
  return &B.xbuf[((B.cur / kWarp) * kWarp + lane) * kXWords];
}

inline char* dynamic_smem() { return g_block->smem.data(); }

inline void fiber_entry() {
  g_block->body();
  g_block->fibers[g_block->cur].state = 3;
}  // returns to uc_link = the scheduler

// Runs kernel(args...) over the grid, block by block, every thread of a block as a fiber.
template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem_bytes, Args&&... args) {
  if (block.y != 1 || block.z != 1 || block.x % kWarp != 0)
    throw std::runtime_error("pan_emu: only 1-D blocks of whole warps are emulated");
  std::tuple<std::decay_t<KArgs>...> targs(std::forward<Args>(args)...);
  Block B;
  B.nthreads = static_cast<int>(block.x);
  B.fibers.resize(B.nthreads);
  for (auto& f : B.fibers) f.stack.resize(1 << 18);
  B.warp_arrived.assign(B.nthreads / kWarp, 0);
  B.xbuf.assign(B.nthreads * kXWords, 0u);
  B.body = [&]() { std::apply(kernel, targs); };
  blockDim = block;
  gridDim = grid;
  g_block = &B;
  for (unsigned by = 0; by < grid.y; ++by) {
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      blockIdx = dim3(bx, by, 0);
      // poison shared memory: a kernel that reads what it never wrote sees NaN-like garbage
      B.smem.assign(smem_bytes + 16, static_cast<char>(0xFF));
      B.block_arrived = 0;
      for (int i = 0; i < B.nthreads; ++i) {
        Fiber& f = B.fibers[i];
        f.state = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &B.sched;
        makecontext(&f.ctx, fiber_entry, 0);
      }
      int finished = 0;
      while (finished < B.nthreads) {
        bool progress = false;
        finished = 0;
        for (int i = 0; i < B.nthreads; ++i) {
          if (B.fibers[i].state == 3) {
            ++finished;
            continue;
          }
          if (B.fibers[i].state != 0) continue;
          B.cur = i;
          threadIdx = dim3(static_cast<unsigned>(i), 0, 0);
          swapcontext(&B.sched, &B.fibers[i].ctx);
          progress = true;
          if (B.fibers[i].state == 3) ++finished;
        }
        if (!progress && finished < B.nthreads) {
          g_block = nullptr;
          throw std::runtime_error("pan_emu: deadlock (a barrier or warp collective not reached by every thread) in block " +
                                   std::to_string(bx) + "," + std::to_string(by));
        }
      }
    }
  }
  g_block = nullptr;
}

inline uint32_t f2u(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float u2f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T>
T shfl_xor(T v, int mask) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  const int lane = g_block->cur % kWarp;
  uint32_t u;
  std::memcpy(&u, &v, 4);
  lane_words(lane)[0] = u;
  syncwarp();
  u = lane_words(lane ^ mask)[0];
  syncwarp();
  std::memcpy(&v, &u, 4);
  return v;
}

// cvt.rna.tf32.f32: round to nearest, ties away from zero, keep 10 mantissa bits.
inline uint32_t to_tf32(float f) {
  uint32_t u = f2u(f);
  if (!std::isfinite(f)) return u;
  return (u + 0x1000u) & 0xFFFFE000u;
}

inline float half_lo(uint32_t w, int kind, int hi) {
  const uint16_t bits = static_cast<uint16_t>(hi ? (w >> 16) : (w & 0xFFFF));
  if (kind == 1) return static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits()));
  return static_cast<float>(c10::Half(bits, c10::Half::from_bits()));
}

// kind 0: m16n8k8 tf32; 1: m16n8k16 bf16; 2: m16n8k16 f16. d = a * b + d, D/C layout: c0 (g, 2t), c1 (g, 2t+1),
// c2 (g+8, 2t), c3 (g+8, 2t+1) with g = lane / 4, t = lane % 4.
inline void mma(int kind, float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const int lane = g_block->cur % kWarp;
  uint32_t* mine = lane_words(lane);
  for (int i = 0; i < 4; ++i) mine[i] = a[i];
  mine[4] = b[0];
  mine[5] = b[1];
  syncwarp();
  auto A = [&](int r, int k) -> float {
    if (kind == 0) {  // a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
      const uint32_t* w = lane_words((r % 8) * 4 + (k % 4));
      return u2f(w[(r >= 8 ? 1 : 0) + (k >= 4 ? 2 : 0)] & 0xFFFFE000u);
    }
    // reg0 (g, 2t..2t+1), reg1 (g+8, 2t..), reg2 (g, 2t+8..), reg3 (g+8, 2t+8..); low half = even k
    const uint32_t* w = lane_words((r % 8) * 4 + (k % 8) / 2);
    return half_lo(w[(r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], kind, k % 2);
  };
  auto Bm = [&](int k, int n) -> float {
    if (kind == 0) {  // b0 (k=t, n=g), b1 (k=t+4, n=g)
      const uint32_t* w = lane_words(n * 4 + (k % 4));
      return u2f(w[4 + (k >= 4 ? 1 : 0)] & 0xFFFFE000u);
    }
    // b reg0 (k=2t..2t+1, n=g), reg1 (k=2t+8.., n=g)
    const uint32_t* w = lane_words(n * 4 + (k % 8) / 2);
    return half_lo(w[4 + (k >= 8 ? 1 : 0)], kind, k % 2);
  };
  const int K = kind == 0 ? 8 : 16;
  const int g = lane / 4, t = lane % 4;
  float out[4];
  for (int e = 0; e < 4; ++e) {
    const int r = g + (e >= 2 ? 8 : 0), n = 2 * t + (e % 2);
    double acc = d[e];
    for (int k = 0; k < K; ++k) acc += static_cast<double>(A(r, k)) * static_cast<double>(Bm(k, n));
    out[e] = static_cast<float>(acc);
  }
  syncwarp();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

}  // namespace pan_emu

using pan_emu::blockDim;
using pan_emu::blockIdx;
using pan_emu::dim3;
using pan_emu::gridDim;
using pan_emu::threadIdx;

inline void __syncthreads() { pan_emu::syncthreads(); }
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
  return pan_emu::shfl_xor(v, mask);
}
inline uint32_t __float_as_uint(float f) { return pan_emu::f2u(f); }
inline float __uint_as_float(uint32_t u) { return pan_emu::u2f(u); }
