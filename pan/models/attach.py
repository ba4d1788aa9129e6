"""Progressive attention attached to any CNN given as named stages (paper §4.2; docs/design.md, The VGG-16 network).

A backbone is an ordered mapping name -> module whose modules run one after another (e.g. VGG-16's five blocks
ending in pool1..pool5, or ResNet-50's stem and layer1..layer4; see pan.models.torchvision_pan). After each stage
named in `gated`, a query-conditioned sigmoid gate with local context multiplies the feature map; the stage named
`final` gets the softmax attention and the head. Stages after `final` are dropped.

    stages = vgg16_stages(torchvision.models.vgg16())
    model = AttachedPAN(stages, gated=("pool3", "pool4"), final="pool5",
                        channels={"pool3": 256, "pool4": 512, "pool5": 512},
                        num_queries=827, num_classes=749, head="hard", multilabel=True, context=2)
    out = model(images [B, 3, H, W], query [B])   # MultiLabelOutput(log_p, log_1mp, attention) or ModelOutput

Heads: "hard" marginalises a per-location classifier over the attention (multi-label: the fused
`hard_attention_marginal_multilabel`), "soft" classifies the attention-pooled feature. `prior=True` is the paper's
"w/ prior" variant: the attended feature (per location for "hard") is fused with the query by one fc layer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pan.models.outputs import ModelOutput
from pan_kernels import HardAttentionHead, MultiLabelAttentionHead, ProgressiveAttention, soft_attention_pool

HEADS = ("hard", "soft")


class MultiLabelOutput(NamedTuple):
    """log_p, log_1mp [B, A]: log p_a and log(1 - p_a) of each attribute; attention: one map [B, h, w] per layer."""

    log_p: Tensor
    log_1mp: Tensor
    attention: tuple[Tensor, ...]


class QueryPrior(nn.Module):
    """One fc layer fusing a feature with the query: relu(W f + E q + b); f [B, C] or [B, C, H, W] (per location)."""

    def __init__(self, channels: int, num_queries: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)
        self.query_embedding = nn.Embedding(num_queries, channels)

    def forward(self, f: Tensor, query: Tensor) -> Tensor:
        e = self.query_embedding(query).to(f.dtype)
        if f.dim() == 2:
            return F.relu(self.fc(f) + e)
        fused = torch.einsum("bchw,dc->bdhw", f, self.fc.weight.to(f.dtype)) + self.fc.bias.to(f.dtype)[:, None, None]
        return F.relu(fused + e[:, :, None, None])


class AttachedPAN(nn.Module):
    """A CNN given as named stages with progressive attention after `gated` stages and the head after `final`."""

    def __init__(self, stages: Mapping[str, nn.Module], *, gated: Sequence[str], final: str,
                 channels: Mapping[str, int], num_queries: int, num_classes: int, head: str = "hard",
                 multilabel: bool = False, context: int = 2, hidden: int | None = None, prior: bool = False,
                 norm_after_gate: bool = False, backend: str = "auto"):
        super().__init__()
        names = list(stages)
        if final not in names:
            raise ValueError(f"final must name a stage, one of {names}, got {final!r}")
        kept = names[: names.index(final) + 1]
        unknown = [g for g in gated if g not in kept[:-1]]
        if unknown:
            raise ValueError(f"gated must name stages before final {final!r} (one of {kept[:-1]}), got {unknown}")
        missing = [n for n in (*gated, final) if n not in channels]
        if missing:
            raise ValueError(f"channels must give the channel count of every attended stage; missing {missing}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.stages = nn.ModuleDict(OrderedDict((n, stages[n]) for n in kept))
        self.gated, self.final, self.head_kind, self.multilabel = tuple(gated), final, head, multilabel

        def attention(name: str, gate: str) -> ProgressiveAttention:
            c = channels[name]
            return ProgressiveAttention(c, hidden or min(c, 512), num_queries, context=context, gate=gate,
                                        backend=backend)

        self.gates = nn.ModuleDict({n: attention(n, "sigmoid") for n in gated})
        self.norms = nn.ModuleDict({n: nn.BatchNorm2d(channels[n]) if norm_after_gate else nn.Identity()
                                    for n in gated})
        self.scores = attention(final, "none")
        c = channels[final]
        self.prior = QueryPrior(c, num_queries) if prior else None
        if head == "hard":
            self.head = (MultiLabelAttentionHead if multilabel else HardAttentionHead)(c, num_classes, backend=backend)
        else:
            self.classifier = nn.Linear(c, num_classes)
        self.backend = backend

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The CNN's own parameters (the stages), e.g. for a smaller learning rate on a pretrained backbone."""
        return list(self.stages.parameters())

    def forward(self, images: Tensor, query: Tensor) -> ModelOutput | MultiLabelOutput:
        maps, gate_inputs = [], []
        f = images
        for name, stage in self.stages.items():
            f = stage(f)
            if name in self.gates:
                gate_inputs.append(f)
                f, alpha = self.gates[name](f, query)
                f = self.norms[name](f)
                maps.append(alpha)
        _, s = self.scores(f, query)
        if self.head_kind == "hard":
            if self.prior is not None:
                f = self.prior(f, query)
            result = self.head(f, s)
            maps.append(result[-1])
            if self.multilabel:
                return MultiLabelOutput(result[0], result[1], tuple(maps))
            return ModelOutput(result[0], tuple(maps), tuple(gate_inputs))
        f_att, alpha = soft_attention_pool(f, s, backend=self.backend)
        maps.append(alpha)
        if self.prior is not None:
            f_att = self.prior(f_att, query)
        logits = self.classifier(f_att)
        if self.multilabel:
            return MultiLabelOutput(F.logsigmoid(logits), F.logsigmoid(-logits), tuple(maps))
        return ModelOutput(torch.log_softmax(logits, dim=-1), tuple(maps), tuple(gate_inputs))
