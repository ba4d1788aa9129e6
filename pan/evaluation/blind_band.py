"""The blind band: image rows / columns the last features of the reference CNN never see.

Its unpadded 3x3 convolutions and floored 2x2 pools make the 4x4 attention map cover pixels ``[0, VISIBLE_EXTENT)``
of a 100x100 image per axis (`pan.models.backbone.VISIBLE_EXTENT` = 94): ink in the bottom / right 6 pixels reaches
no final feature."""

from __future__ import annotations

import numpy as np

__all__ = ["target_band_share"]


def target_band_share(data) -> np.ndarray:
    """``[N]`` float: for each example of a `pan.data.PanDataset`, the fraction of its queried digit's mask that lies
    outside ``[0, VISIBLE_EXTENT)^2`` (0: fully visible, 1: fully in the band)."""
    from pan.models.backbone import VISIBLE_EXTENT

    share = np.zeros(len(data))
    for i in range(len(data)):
        mask = data.instances[data.image_index[i]] == data.target[i]
        share[i] = 1 - mask[:VISIBLE_EXTENT, :VISIBLE_EXTENT].sum() / max(int(mask.sum()), 1)
    return share
