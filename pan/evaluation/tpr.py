"""True-positive ratio of attention (docs/design.md, Metrics).

Each attention map is spread to image space over its receptive field (every location's value spread evenly over
the pixels it sees), the maps of all attention layers are multiplied, the product is normalised to sum 1, and
TPR = the mass inside the target's ground-truth mask. No map at all means uniform attention (TPR = mask area).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pan.models.backbone import IMAGE_SIZE, Geometry


def spread_to_image(values: Tensor, geometry: Geometry, size: int = IMAGE_SIZE) -> Tensor:
    """values [B, h, w] on a feature grid -> [B, size, size]: location (i, j) adds values[i, j] / rf^2 to each pixel
    of [i*stride, i*stride + rf) x [j*stride, j*stride + rf); pixels no location sees get 0."""
    if geometry.rf == 1 and geometry.stride == 1 and values.shape[-2:] == (size, size):
        return values.float()
    box = values.new_ones((1, 1, geometry.rf, geometry.rf), dtype=torch.float32) / geometry.rf**2
    image = F.conv_transpose2d(values.float()[:, None], box, stride=geometry.stride)[:, 0]
    h, w = image.shape[-2:]
    return F.pad(image, (0, max(size - w, 0), 0, max(size - h, 0)))[:, :size, :size]


def image_attention(maps: Sequence[Tensor], geometries: Sequence[Geometry], batch: int, device,
                    size: int = IMAGE_SIZE) -> Tensor:
    """Product of all spread maps, normalised to sum 1 per sample: [B, size, size]. No maps -> uniform."""
    if len(maps) != len(geometries):
        raise ValueError(f"got {len(maps)} attention maps but {len(geometries)} geometries")
    product = torch.ones(batch, size, size, device=device)
    for values, geometry in zip(maps, geometries):
        product = product * spread_to_image(values.detach(), geometry, size)
    total = product.sum((1, 2), keepdim=True)
    # all-zero products (every layer looked elsewhere) count as no mass anywhere: TPR 0, not NaN
    return product / total.clamp_min(torch.finfo(product.dtype).tiny)


def true_positive_ratio(attention: Tensor, masks: Tensor) -> Tensor:
    """attention [B, S, S] (sums to 1), masks [B, S, S] bool -> TPR [B] = attention mass inside the mask."""
    if attention.shape != masks.shape:
        raise ValueError(f"attention {tuple(attention.shape)} and masks {tuple(masks.shape)} must have one shape")
    return (attention * masks.to(attention.dtype)).sum((1, 2))
