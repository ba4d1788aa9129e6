// The operator schemas of the CUDA backend, written once (X-macro). They must equal
// pan_kernels/ops/schemas.py (tests/test_cuda_extension.py checks it); X(name, schema) with name = <op>_cuda[_backward].
#pragma once

#define PAN_CUDA_SCHEMAS(X)                                                                                   \
  X(progressive_attention_cuda,                                                                               \
    "(Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2, Tensor? bias2)"             \
    " -> (Tensor, Tensor)")                                                                                   \
  X(progressive_attention_cuda_backward,                                                                      \
    "(Tensor grad_out, Tensor grad_alpha, Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1,"        \
    " Tensor weight2, Tensor alpha) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")                     \
  X(attention_scores_cuda,                                                                                    \
    "(Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2, Tensor? bias2) -> Tensor")  \
  X(attention_scores_cuda_backward,                                                                           \
    "(Tensor grad_scores, Tensor x, Tensor query_bias, Tensor weight1, Tensor? bias1, Tensor weight2)"        \
    " -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)")                                                   \
  X(hard_attention_marginal_cuda,                                                                             \
    "(Tensor x, Tensor scores, Tensor cls_weight, Tensor? cls_bias) -> (Tensor, Tensor, Tensor)")             \
  X(hard_attention_marginal_cuda_backward,                                                                    \
    "(Tensor grad_log_p, Tensor grad_alpha, Tensor x, Tensor cls_weight, Tensor? cls_bias, Tensor stats)"     \
    " -> (Tensor, Tensor, Tensor, Tensor)")                                                                   \
  X(soft_attention_pool_cuda, "(Tensor x, Tensor scores) -> (Tensor, Tensor)")                                \
  X(soft_attention_pool_cuda_backward,                                                                        \
    "(Tensor grad_f_att, Tensor grad_alpha, Tensor x, Tensor alpha) -> (Tensor, Tensor)")                     \
  X(hard_attention_marginal_multilabel_cuda,                                                                  \
    "(Tensor x, Tensor scores, Tensor cls_weight, Tensor? cls_bias) -> (Tensor, Tensor, Tensor, Tensor)")     \
  X(hard_attention_marginal_multilabel_cuda_backward,                                                         \
    "(Tensor grad_log_p, Tensor grad_log_1mp, Tensor grad_alpha, Tensor x, Tensor cls_weight, Tensor? cls_bias," \
    " Tensor stats) -> (Tensor, Tensor, Tensor, Tensor)")
