"""PAN[S], PAN[H] (+CTX), SAN and HAN: the reference CNN with query-conditioned attention from pan_kernels.

PAN: sigmoid attention (with local context k = 2*context+1) after pools 1-3, each followed by batch-norm, and a
softmax attention (no context) after pool 4 feeding a soft (pooled fc) or hard (marginalised per-location fc) head.
``head_dropout`` p > 0 puts batch-norm then dropout p on the pool-4 features the classifier reads (not on the ones the
last attention scores): the regularised head of the authors' training script (batch-norm + dropout 0.5 before its
dense layer; docs/training-notes.md §12). The paper's text has neither (p = 0, the default).
SAN / HAN: the same CNN with only the last-layer soft / hard attention.
All weights start Glorot-uniform, biases at 0, as in the authors' code (pan.models.init).
"""

from __future__ import annotations

from torch import Tensor, nn

from pan.models.backbone import CHANNELS, NUM_STAGES, STAGE_GEOMETRY, Backbone
from pan.models.init import glorot_init_
from pan.models.outputs import ModelOutput
from pan_kernels import HardAttentionHead, ProgressiveAttention, SoftAttentionHead

HEADS = {"soft": SoftAttentionHead, "hard": HardAttentionHead}


def check_dropout_probability(p: object) -> float:
    """``p`` as a float; ``ValueError`` unless it is a number in [0, 1) (1 would drop every feature)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"head_dropout must be a number in [0, 1), got {p!r}")
    return float(p)


class AttentionCNN(nn.Module):
    """images [B, 3, 100, 100] in [0, 1], query [B] int64 -> ModelOutput(log_probs [B, A], attention maps)."""

    def __init__(self, gated_stages: tuple[int, ...], context: int, head: str, *, backend: str = "auto",
                 num_queries: int = 10, num_classes: int = 5, hidden: int = 32, head_dropout: float = 0.0):
        super().__init__()
        head_dropout = check_dropout_probability(head_dropout)
        if head not in HEADS:
            raise ValueError(f"head must be one of {tuple(HEADS)}, got {head!r}")
        if any(not 0 <= s < NUM_STAGES - 1 for s in gated_stages):
            raise ValueError(f"gated_stages must lie in 0..{NUM_STAGES - 2}, got {gated_stages}")
        self.backbone = Backbone()
        self.gated_stages = tuple(gated_stages)
        self.gates = nn.ModuleList(
            [ProgressiveAttention(CHANNELS, hidden, num_queries, context=context, backend=backend)
             for _ in gated_stages])
        self.norms = nn.ModuleList([nn.BatchNorm2d(CHANNELS) for _ in gated_stages])
        self.scores = ProgressiveAttention(CHANNELS, hidden, num_queries, context=0, gate="none", backend=backend)
        self.head = HEADS[head](CHANNELS, num_classes, backend=backend)
        self.head_norm = nn.Sequential(nn.BatchNorm2d(CHANNELS), nn.Dropout(head_dropout)) if head_dropout else None
        self.attention_geometry = [STAGE_GEOMETRY[s] for s in gated_stages] + [STAGE_GEOMETRY[NUM_STAGES - 1]]
        glorot_init_(self)

    def set_backend(self, backend: str) -> None:
        """Switch every attention layer to another pan_kernels backend."""
        for module in self.modules():
            if isinstance(module, (ProgressiveAttention, HardAttentionHead, SoftAttentionHead)):
                module.backend = backend

    def forward(self, images: Tensor, query: Tensor) -> ModelOutput:
        maps, gate_inputs = [], []
        f = images
        for i, stage in enumerate(self.backbone.stages):
            f = stage(f)
            if i in self.gated_stages:
                j = self.gated_stages.index(i)
                gate_inputs.append(f)
                f, alpha = self.gates[j](f, query)
                f = self.norms[j](f)
                maps.append(alpha)
        _, s = self.scores(f, query)
        log_probs, alpha = self.head(f if self.head_norm is None else self.head_norm(f), s)
        maps.append(alpha)
        return ModelOutput(log_probs, tuple(maps), tuple(gate_inputs))
