"""STN-S and STN-M: query-conditioned spatial transformers (affine, 6 parameters) in front of the reference CNN.

STN-S: one transformer on the image, its localisation net the same CNN. STN-M: a transformer before each stage,
each localised by the remaining CNN stages. Their attention (for TPR) is uniform over the input region the first
(image-space) sampling grid covers: the density of its sample points, as the paper does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pan.models.backbone import CHANNELS, IMAGE_GEOMETRY, IMAGE_SIZE, NUM_STAGES, conv_stage
from pan.models.outputs import ModelOutput

FINAL_FEATURES = CHANNELS * 4 * 4


class QueryTransformer(nn.Module):
    """theta = fc([loc_net(x), embed(q)]) initialised to the identity; returns (warped x, sampling grid [B,S,S,2])."""

    def __init__(self, loc_net: nn.Module, loc_features: int, num_queries: int, hidden: int = 32):
        super().__init__()
        self.loc_net = loc_net
        self.query_embedding = nn.Embedding(num_queries, hidden)
        self.fc = nn.Sequential(nn.Linear(loc_features + hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 6))
        nn.init.zeros_(self.fc[-1].weight)
        with torch.no_grad():
            self.fc[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.loc_net(x).flatten(1)
        theta = self.fc(torch.cat([feats, self.query_embedding(query)], dim=1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False), grid


def grid_coverage(grid: Tensor, size: int = IMAGE_SIZE) -> Tensor:
    """Density of sampling points over the input image: grid [B, S, S, 2] in [-1, 1] -> counts [B, size, size]."""
    B = grid.shape[0]
    pix = ((grid.detach() + 1) * size - 1) / 2  # align_corners=False convention
    col, row = pix[..., 0].round().long().flatten(1), pix[..., 1].round().long().flatten(1)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    index = torch.where(inside, row * size + col, torch.zeros_like(col))
    counts = torch.zeros(B, size * size, device=grid.device, dtype=torch.float32)
    counts.scatter_add_(1, index, inside.float())
    return counts.view(B, size, size)


def _stages(first: int, in_channels: int) -> nn.Sequential:
    return nn.Sequential(*[conv_stage(in_channels if i == first else CHANNELS) for i in range(first, NUM_STAGES)])


class STN(nn.Module):
    """STN-S (`multi=False`) or STN-M (`multi=True`); images [B,3,100,100], query [B] -> ModelOutput."""

    def __init__(self, multi: bool, *, num_queries: int = 10, num_classes: int = 5, backend: str = "auto"):
        super().__init__()
        del backend  # no pan_kernels ops inside
        self.multi = multi
        count = NUM_STAGES if multi else 1
        self.transformers = nn.ModuleList(
            [QueryTransformer(_stages(i, 3 if i == 0 else CHANNELS), FINAL_FEATURES, num_queries)
             for i in range(count)])
        self.stages = _stages(0, 3)
        self.classifier = nn.Linear(FINAL_FEATURES, num_classes)
        self.attention_geometry = [IMAGE_GEOMETRY]

    def forward(self, images: Tensor, query: Tensor) -> ModelOutput:
        f, grid = self.transformers[0](images, query)
        coverage = grid_coverage(grid)
        for i, stage in enumerate(self.stages):
            if self.multi and i > 0:
                f, _ = self.transformers[i](f, query)
            f = stage(f)
        return ModelOutput(torch.log_softmax(self.classifier(f.flatten(1)), dim=-1), (coverage,))
