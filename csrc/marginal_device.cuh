// Device side shared by the two marginal heads (hard_attention_marginal and its multi-label form): the softmax of
// the attention scores that opens both forwards, the alpha . g_alpha term of both backwards, and the walk over the
// classifier logits z_ija that their passes make (all but the forwards' per-class logsumexp over pixels, whose warp
// shuffles need every lane, also those past A). Host side: marginal_host.cuh.
#pragma once

#include "common.cuh"

namespace pan {

// log alpha = log_softmax(s) over image b's H*W scores. Writes alpha_out[b, ij] and st[ij] = log alpha_ij for the
// tile's pixels and la_s[row] = log alpha of each tile row (-inf outside the image; read it after a barrier, e.g.
// the ones in tile.run()). Every thread of the CTA must call it (block_lse).
template <Prec P, int BN>
__device__ __forceinline__ void tile_log_alpha(const ConvTile<P, BN>& tile, Strided3<scalar_of<P>> sc,
                                               scalar_of<P>* alpha_out, float* st, float* la_s, float* scratch) {
  const int tid = threadIdx.x, b = tile.b, W = tile.ca.W, HW = tile.ca.H * tile.ca.W;
  float m = -INFINITY, l = 0.f;
  for (int p = tid; p < HW; p += kThreads) lse_push(m, l, sc.at(b, p / W, p % W));
  const float lse_s = block_lse(m, l, scratch);
  if (tid < kBM) {
    int i, j;
    float la = -INFINITY;
    if (tile.row_pixel(tid, i, j)) {
      la = sc.at(b, i, j) - lse_s;
      alpha_out[static_cast<int64_t>(b) * HW + i * W + j] = static_cast<scalar_of<P>>(expf(la));
      st[i * W + j] = la;
    }
    la_s[tid] = la;
  }
}

// sum_ij alpha_ij g_alpha[b, i, j] with log alpha = log_alpha[0:H*W]; every thread of the CTA must call it.
template <typename T>
__device__ __forceinline__ float alpha_dot(const float* log_alpha, Strided3<T> ga, int b, int H, int W,
                                           float* scratch) {
  float v = 0.f;
  for (int p = threadIdx.x; p < H * W; p += kThreads) v += expf(log_alpha[p]) * ga.at(b, p / W, p % W);
  return block_sum(v, scratch);
}

// The classifier logits z_ija = (Wc x_ij)_a + bc_a (a < A) of the tile, one block of BN classes at a time
// (tile.run() into the caller's acc, reused across passes): column(n, rows) runs for each class n < A of the thread's
// fragment, and rows(f) calls f(mf, h, row, i, j, z) for each of the thread's tile rows that lies inside the image.
// Per-class values belong in `column`, per-pixel work in `f`. Contains tile.run()'s barriers: every thread of the
// CTA must call it.
template <Prec P, int BN, class Column>
__device__ __forceinline__ void for_each_logit(ConvTile<P, BN>& tile, float (&acc)[2][WarpGemm<P, BN>::NF][4], int A,
                                               const scalar_of<P>* bc, Column&& column) {
  const Fragment fr = Fragment::of_thread();
  for (int n0 = 0; n0 < A; n0 += BN) {
    tile.run(acc, n0);
    fr.cols<BN>([&](int nf, int jn, int col) {
      const int n = n0 + col;
      if (n >= A) return;
      const float bias = bc != nullptr ? static_cast<float>(bc[n]) : 0.f;
      column(n, [&](auto&& f) {
        fr.rows([&](int mf, int h, int row) {
          int i, j;
          if (tile.row_pixel(row, i, j)) f(mf, h, row, i, j, acc[mf][nf][2 * h + jn] + bias);
        });
      });
    });
  }
}

}  // namespace pan
