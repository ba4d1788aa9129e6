// Host side shared by the two marginal heads (hard_attention_marginal and its multi-label form): both run the
// classifier as a k = 1 conv over x on the tensor-core main loop, one CTA per (image, spatial tile), and both
// backwards write an fp32 logit-gradient workspace gz [B*H*W, A] that two matmuls turn into dx, dWc and dbc.
#pragma once

#include "common.cuh"

namespace pan {

// The checked sizes of one head call and its classifier in the main loop's layout.
struct MarginalProblem {
  int64_t A, B, C, H, W, HW, ntiles;
  at::Tensor wc;  // [A, C] contiguous: the k = 1 packed weight of the conv main loop
  at::Tensor bc;  // [A] contiguous, or undefined when the head has no bias
  TileGeom tg;

  template <typename T>
  const T* bias() const {
    return bc.defined() ? static_cast<const T*>(bc.data_ptr()) : nullptr;
  }
};

// Checks x and the classifier (cls_weight [A, C], cls_bias [A] or none) and picks the spatial tiles.
inline MarginalProblem marginal_problem(const char* op, const at::Tensor& x, const at::Tensor& cls_weight,
                                        const std::optional<at::Tensor>& cls_bias) {
  check_x(op, x);
  MarginalProblem m;
  m.A = check_classifier(op, x, cls_weight, cls_bias);
  m.B = x.size(0), m.C = x.size(1), m.H = x.size(2), m.W = x.size(3), m.HW = m.H * m.W;
  TORCH_CHECK(m.B * m.HW < (int64_t(1) << 31) && m.A * m.C < (int64_t(1) << 31), op, ": x is too large, got ",
              x.sizes());
  m.wc = cls_weight.contiguous();
  m.bc = cls_bias.has_value() ? cls_bias->contiguous() : at::Tensor();
  m.tg = choose_tiles(static_cast<int>(m.H), static_cast<int>(m.W), 1);
  m.ntiles = static_cast<int64_t>(m.tg.tiles_x) * m.tg.tiles_y;
  return m;
}

// Calls launch(PrecTag<P>, IntTag<BN>, ConvArgs) for x's precision and the output-column block that fits A.
template <typename F>
inline void dispatch_marginal(const char* op, const at::Tensor& x, const MarginalProblem& m, F&& launch) {
  dispatch_prec(x, op, [&](auto ptag) {
    dispatch_bn(static_cast<int>(m.A), [&](auto btag) {
      launch(ptag, btag,
             make_conv_args(x.data_ptr(), x.stride(0), x.stride(1), x.stride(2), x.stride(3), m.wc.data_ptr(), m.C,
                            m.A, m.H, m.W, 1, m.tg));
    });
  });
}

// The backward's frame: allocates dx, ds [B, H, W] and gz; launch(PrecTag, IntTag, ConvArgs, ds, gz) writes ds and
// gz; returns (dx, ds, dWc, dbc). Call after the device guard.
template <typename F>
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> marginal_backward(const char* op,
                                                                                    const at::Tensor& x,
                                                                                    const MarginalProblem& m,
                                                                                    F&& launch) {
  at::Tensor dx = poisoned(at::empty_like(x));
  at::Tensor ds = poisoned(at::empty({m.B, m.H, m.W}, x.options()));
  if (m.B == 0) return {dx, ds, at::zeros({m.A, m.C}, x.options()), at::zeros({m.A}, x.options())};
  at::Tensor gz = poisoned(at::empty({m.B * m.HW, m.A}, x.options().dtype(at::kFloat)));
  dispatch_marginal(op, x, m, [&](auto ptag, auto btag, const ConvArgs& ca) { launch(ptag, btag, ca, ds, gz); });
  auto [dwc, dbc] = marginal_classifier_grads(gz, x, m.wc, dx);
  return {dx, ds, dwc, dbc};
}

}  // namespace pan
