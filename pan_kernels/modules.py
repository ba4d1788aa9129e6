"""nn.Module wrappers of the public ops: they own the parameters; the math lives in pan_kernels.functional."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pan_kernels import functional as F

__all__ = ["ProgressiveAttention", "HardAttentionHead", "SoftAttentionHead", "MultiLabelAttentionHead"]

GATES = ("sigmoid", "none")


class ProgressiveAttention(nn.Module):
    """Query-conditioned attention MLP with local context, as one PAN attention layer.

    Owns W1 [hidden, in_channels, k, k] (k = 2 * context + 1), b1 [hidden], the query embedding
    [num_queries, hidden] (Wq q for a one-hot q), w2 [hidden] and b2 [].

    forward(x [B, C, H, W], query [B] int64 class ids) ->
      gate="sigmoid": (out = x * alpha [B, C, H, W], alpha = sigmoid(s) [B, H, W]);
      gate="none":    (x unchanged, s [B, H, W]) — the raw scores for a softmax head.
    """

    def __init__(self, in_channels: int, hidden: int, num_queries: int, context: int = 0, gate: str = "sigmoid",
                 backend: str = "auto"):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("hidden", hidden, 1),
                                 ("num_queries", num_queries, 1), ("context", context, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if 2 * context + 1 > 7:
            raise ValueError(f"context must be in 0..3 (kernel size 2*context+1 <= 7), got {context}")
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        k = 2 * context + 1
        self.gate, self.context, self.backend = gate, context, backend
        self.weight1 = nn.Parameter(torch.empty(hidden, in_channels, k, k))
        self.bias1 = nn.Parameter(torch.empty(hidden))
        self.query_embedding = nn.Embedding(num_queries, hidden)
        self.weight2 = nn.Parameter(torch.empty(hidden))
        self.bias2 = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.weight1[0].numel()
        nn.init.kaiming_uniform_(self.weight1, a=math.sqrt(5))
        nn.init.uniform_(self.bias1, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        nn.init.normal_(self.query_embedding.weight, std=1 / math.sqrt(self.weight1.shape[0]))
        nn.init.uniform_(self.weight2, -1 / math.sqrt(self.weight2.numel()), 1 / math.sqrt(self.weight2.numel()))
        nn.init.zeros_(self.bias2)

    def forward(self, x: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        query_bias = self._query_bias(query).to(x.dtype)
        params = [p.to(x.dtype) for p in (self.weight1, self.bias1, self.weight2, self.bias2)]
        if self.gate == "sigmoid":
            return F.progressive_attention(x, query_bias, params[0], params[1], params[2], params[3],
                                           backend=self.backend)
        return x, F.attention_scores(x, query_bias, params[0], params[1], params[2], params[3], backend=self.backend)

    def _query_bias(self, query: Tensor) -> Tensor:
        """Wq q [B, hidden] for class ids ``query`` [B]; a clear IndexError for an id outside 0..num_queries-1
        (checked where it costs nothing: the embedding's own CPU bounds check, not a device sync per call)."""
        if torch.compiler.is_compiling():
            return self.query_embedding(query)
        try:
            return self.query_embedding(query)
        except IndexError:
            n = self.query_embedding.num_embeddings
            bad = query[(query < 0) | (query >= n)]
            raise IndexError(f"query holds class id {int(bad[0]) if bad.numel() else '?'}, outside the valid range "
                             f"0..{n - 1} of this layer's {n} query classes") from None

    def extra_repr(self) -> str:
        hidden, c, k, _ = self.weight1.shape
        return f"in_channels={c}, hidden={hidden}, k={k}, gate={self.gate!r}, backend={self.backend!r}"


class _Classifier(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, backend: str = "auto"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.backend = backend
        self.cls_weight = nn.Parameter(torch.empty(num_classes, in_channels))
        self.cls_bias = nn.Parameter(torch.empty(num_classes))
        bound = 1 / math.sqrt(in_channels)
        nn.init.uniform_(self.cls_weight, -bound, bound)
        nn.init.uniform_(self.cls_bias, -bound, bound)


class HardAttentionHead(_Classifier):
    """Last layer of PAN[H]/HAN: forward(x [B,C,H,W], scores [B,H,W]) -> (log p(a) [B,A], alpha [B,H,W]),
    the attention-marginalised per-location classifier (train on -log p(y))."""

    def forward(self, x: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        return F.hard_attention_marginal(x, scores, self.cls_weight.to(x.dtype), self.cls_bias.to(x.dtype),
                                         backend=self.backend)


class SoftAttentionHead(_Classifier):
    """Last layer of PAN[S]/SAN: forward(x, scores) -> (log_softmax(Wc f_att + bc) [B,A], alpha [B,H,W]),
    with f_att = sum_ij softmax(s)_ij x_ij."""

    def forward(self, x: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        f_att, alpha = F.soft_attention_pool(x, scores, backend=self.backend)
        logits = torch.nn.functional.linear(f_att, self.cls_weight.to(x.dtype), self.cls_bias.to(x.dtype))
        return torch.log_softmax(logits, dim=-1), alpha


class MultiLabelAttentionHead(_Classifier):
    """Last layer of the multi-label PAN[H]/HAN (Visual Genome attributes): forward(x [B,C,H,W], scores [B,H,W]) ->
    (log p_a [B,A], log(1 - p_a) [B,A], alpha [B,H,W]) with p_a = sum_ij alpha_ij sigmoid(Wc x_ij + bc)_a;
    `loss(log_p, log_1mp, target)` is the multi-label negative log-likelihood."""

    def forward(self, x: Tensor, scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return F.hard_attention_marginal_multilabel(x, scores, self.cls_weight.to(x.dtype),
                                                    self.cls_bias.to(x.dtype), backend=self.backend)

    @staticmethod
    def loss(log_p: Tensor, log_1mp: Tensor, target: Tensor) -> Tensor:
        """-sum_a [y_a log p_a + (1 - y_a) log(1 - p_a)], averaged over the batch; target [B, A] in {0, 1}."""
        if target.shape != log_p.shape:
            raise ValueError(f"target must have shape {tuple(log_p.shape)} (like log_p), got {tuple(target.shape)}")
        y = target.to(log_p.dtype)
        return -(y * log_p + (1 - y) * log_1mp).sum(-1).mean()
