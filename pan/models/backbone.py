"""The MNIST-reference CNN of the paper (Fig. 5): four [3x3 conv (32, no padding) -> ReLU -> 2x2 max-pool] stages.

100 -> 98 -> 49 -> 47 -> 23 -> 21 -> 10 -> 8 -> 4. `STAGE_GEOMETRY` gives, for the output of each stage, the
receptive field (pixels) and stride in image space, used to spread attention maps back to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

IMAGE_SIZE = 100
CHANNELS = 32
NUM_STAGES = 4


@dataclass(frozen=True)
class Geometry:
    """Location (i, j) of a feature map covers image pixels [i*stride, i*stride + rf) x [j*stride, j*stride + rf)."""

    rf: int
    stride: int


def _stage_geometry() -> list[Geometry]:
    rf, stride, out = 1, 1, []
    for _ in range(NUM_STAGES):
        rf += 2 * stride  # 3x3 conv
        rf += stride  # 2x2 pool
        stride *= 2
        out.append(Geometry(rf, stride))
    return out


STAGE_GEOMETRY = _stage_geometry()  # rf 4, 10, 22, 46; stride 2, 4, 8, 16


def _final_size(size: int = IMAGE_SIZE) -> int:
    for _ in range(NUM_STAGES):
        size = (size - 2) // 2
    return size


#: Rows / columns of the image that the last stage's features cover: (4 - 1) * 16 + 46 = 94. The floors of the
#: unpadded convolutions and pools drop the last 6 rows and columns, so a digit there is (partly) invisible.
VISIBLE_EXTENT = (_final_size() - 1) * STAGE_GEOMETRY[-1].stride + STAGE_GEOMETRY[-1].rf
IMAGE_GEOMETRY = Geometry(1, 1)


def conv_stage(in_channels: int, out_channels: int = CHANNELS) -> nn.Sequential:
    """3x3 conv (no padding) -> ReLU -> 2x2 max-pool stride 2."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class Backbone(nn.Module):
    """The four conv stages; `stages[i]` maps [B, C_in, S, S] to [B, 32, (S - 2) // 2, ...]."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.stages = nn.ModuleList([conv_stage(in_channels if i == 0 else CHANNELS) for i in range(NUM_STAGES)])

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return x
