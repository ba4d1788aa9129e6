"""STN-S and STN-M on VGG-16 (the paper's real-image baselines, §4.2), built as the MREF family's (pan.models.stn):
query-conditioned affine transformers whose localisation nets are the VGG-16 blocks that follow them.

STN-S: one transformer on the image, localised by a full VGG-16 (its own weights). STN-M: a transformer before each
of the five blocks, each localised by the blocks after it. The classifier reads pool5, averaged over space. Their
attention (for TPR) is the density of the first transformer's sampling points over the image, as for MREF.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pan.models.attach import MultiLabelOutput
from pan.models.outputs import ModelOutput
from pan.models.stn import QueryTransformer, grid_coverage
from pan.models.torchvision_backbones import vgg16_backbone, vgg16_stages


def _vgg_blocks(weights: str | Path | None) -> list[nn.Module]:
    return list(vgg16_stages(vgg16_backbone(weights)).values())


class VGGSTN(nn.Module):
    """STN-S (multi=False) or STN-M (multi=True) on VGG-16: images [B, 3, S, S], query [B] -> (MultiLabel)Output."""

    def __init__(self, multi: bool, *, num_queries: int, num_classes: int, multilabel: bool = True,
                 weights: str | Path | None = None):
        super().__init__()
        self.multi, self.multilabel = multi, multilabel
        self.stages = nn.ModuleList(_vgg_blocks(weights))
        firsts = range(len(self.stages)) if multi else range(1)
        # each localisation net starts as a copy of the (possibly pretrained) blocks it runs
        self.transformers = nn.ModuleList(
            [QueryTransformer(nn.Sequential(*copy.deepcopy(list(self.stages)[first:]), nn.AdaptiveAvgPool2d(1)), 512,
                              num_queries) for first in firsts])
        self.classifier = nn.Linear(512, num_classes)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """VGG-16's parameters: the main blocks and every localisation net's copy."""
        return [*self.stages.parameters(), *(p for t in self.transformers for p in t.loc_net.parameters())]

    def forward(self, images: Tensor, query: Tensor) -> ModelOutput | MultiLabelOutput:
        f, grid = self.transformers[0](images, query)
        coverage = grid_coverage(grid, size=images.shape[-1])
        for i, block in enumerate(self.stages):
            if self.multi and i > 0:
                f, _ = self.transformers[i](f, query)
            f = block(f)
        logits = self.classifier(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1))
        if self.multilabel:
            return MultiLabelOutput(F.logsigmoid(logits), F.logsigmoid(-logits), (coverage,))
        return ModelOutput(torch.log_softmax(logits, dim=-1), (coverage,))
