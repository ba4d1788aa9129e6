"""Training-time augmentation (not in the paper): random translations that keep every digit on the canvas.

A trained PAN[H]+CTX answers its training images almost perfectly and loses ~3 points of that when they are moved by
one pixel (docs/training-notes.md §14): part of what it learns is tied to the images' exact placement on its pooling
grid. ``random_shift`` moves each training image by its own integer offset, so no image is seen twice at the same
placement.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_shift", "shift_ranges", "translate"]


def _extent(ink: Tensor) -> tuple[Tensor, Tensor]:
    """``ink [B, L]`` bool -> (first, last) index of a True per row (``0, L - 1`` for a row without one)."""
    length = ink.shape[1]
    pos = torch.arange(length, device=ink.device)
    first = torch.where(ink, pos, length).amin(1)
    last = torch.where(ink, pos, -1).amax(1)
    empty = last < 0
    return first.masked_fill(empty, 0), last.masked_fill(empty, length - 1)


def shift_ranges(images: Tensor, max_shift: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The offsets each image of ``images [B, C, H, W]`` may move by: ``(dy_min, dy_max, dx_min, dx_max)``, each
    ``[B]`` int64, the widest range within ``[-max_shift, max_shift]`` that keeps every non-zero pixel on the canvas
    (an image without one may not move: there is nothing to place)."""
    ink = images.ne(0).any(1)  # [B, H, W]
    top, bottom = _extent(ink.any(2))
    left, right = _extent(ink.any(1))
    height, width = images.shape[-2:]
    return ((-top).clamp(min=-max_shift), (height - 1 - bottom).clamp(max=max_shift),
            (-left).clamp(min=-max_shift), (width - 1 - right).clamp(max=max_shift))


def _uniform_int(low: Tensor, high: Tensor) -> Tensor:
    """One integer per element, uniform in ``[low, high]`` (global torch RNG of ``low``'s device)."""
    u = torch.rand(low.shape, device=low.device, dtype=torch.float64)
    return low + (u * (high - low + 1).double()).floor().long().clamp(max=(high - low))


def random_shift(images: Tensor, max_shift: int) -> Tensor:
    """``images [B, C, H, W]`` on a zero background -> each translated by its own ``(dy, dx)``, drawn uniformly per
    axis from `shift_ranges`; the uncovered border is 0. ``out[b, :, i, j] = images[b, :, i - dy_b, j - dx_b]``. No
    non-zero pixel leaves the canvas, so the answer and every digit stay; ``max_shift = 0`` returns ``images``. The
    memory format of ``images`` is kept; the draws come from the global torch RNG, which checkpoints save."""
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
    if max_shift == 0 or images.shape[0] == 0:
        return images
    dy_min, dy_max, dx_min, dx_max = shift_ranges(images, max_shift)
    return translate(images, _uniform_int(dy_min, dy_max), _uniform_int(dx_min, dx_max))


def translate(images: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """``images [B, C, H, W]`` moved by ``dy [B]`` rows and ``dx [B]`` columns (int64; positive: down / right), zero
    fill: ``out[b, :, i, j] = images[b, :, i - dy_b, j - dx_b]``; the memory format of ``images`` is kept."""
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device)[None, :] - dy[:, None]  # [B, H] source row of each row
    cols = torch.arange(width, device=images.device)[None, :] - dx[:, None]
    keep = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]  # [B, H, W]
    b, c = images.shape[:2]
    src = images.gather(2, rows.clamp(0, height - 1)[:, None, :, None].expand(b, c, height, width))
    src = src.gather(3, cols.clamp(0, width - 1)[:, None, None, :].expand(b, c, height, width))
    out = src * keep[:, None].to(images.dtype)
    fmt = torch.channels_last if images.is_contiguous(memory_format=torch.channels_last) and c > 1 else \
        torch.contiguous_format
    return out.contiguous(memory_format=fmt)
