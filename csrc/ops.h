// Host entry points of the CUDA backend; each implements the schema of the same name (csrc/schemas.h) and is
// registered for the CUDA dispatch key in csrc/pan_kernels.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace pan {

using at::Tensor;
using OptTensor = std::optional<at::Tensor>;
using Grads6 = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// attention_mlp.cu: local-context attention MLP (+ sigmoid gate)
std::tuple<Tensor, Tensor> progressive_attention_cuda(const Tensor& x, const Tensor& query_bias,
                                                      const Tensor& weight1, const OptTensor& bias1,
                                                      const Tensor& weight2, const OptTensor& bias2);
Grads6 progressive_attention_cuda_backward(const Tensor& grad_out, const Tensor& grad_alpha, const Tensor& x,
                                           const Tensor& query_bias, const Tensor& weight1, const OptTensor& bias1,
                                           const Tensor& weight2, const Tensor& alpha);
Tensor attention_scores_cuda(const Tensor& x, const Tensor& query_bias, const Tensor& weight1,
                             const OptTensor& bias1, const Tensor& weight2, const OptTensor& bias2);
Grads6 attention_scores_cuda_backward(const Tensor& grad_scores, const Tensor& x, const Tensor& query_bias,
                                      const Tensor& weight1, const OptTensor& bias1, const Tensor& weight2);

// spatial_attention.cu: softmax over space + hard marginal / soft pool
std::tuple<Tensor, Tensor, Tensor> hard_attention_marginal_cuda(const Tensor& x, const Tensor& scores,
                                                                const Tensor& cls_weight, const OptTensor& cls_bias);
std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_cuda_backward(
    const Tensor& grad_log_p, const Tensor& grad_alpha, const Tensor& x, const Tensor& cls_weight,
    const OptTensor& cls_bias, const Tensor& stats);
std::tuple<Tensor, Tensor> soft_attention_pool_cuda(const Tensor& x, const Tensor& scores);
std::tuple<Tensor, Tensor> soft_attention_pool_cuda_backward(const Tensor& grad_f_att, const Tensor& grad_alpha,
                                                             const Tensor& x, const Tensor& alpha);

// multilabel_marginal.cu: softmax over space + multi-label (sigmoid) hard marginal
std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_multilabel_cuda(const Tensor& x,
                                                                                   const Tensor& scores,
                                                                                   const Tensor& cls_weight,
                                                                                   const OptTensor& cls_bias);
std::tuple<Tensor, Tensor, Tensor, Tensor> hard_attention_marginal_multilabel_cuda_backward(
    const Tensor& grad_log_p, const Tensor& grad_log_1mp, const Tensor& grad_alpha, const Tensor& x,
    const Tensor& cls_weight, const OptTensor& cls_bias, const Tensor& stats);

}  // namespace pan
