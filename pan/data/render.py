"""Drawing one image: digit scaling, non-overlapping placement, colouring and alpha compositing.

Everything after the random draws is integer arithmetic (fixed-point bilinear weights, integer compositing), so the
same random numbers give bit-identical images on every machine.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pan.data.constants import (
    COLOR_NOISE_SD,
    COLOR_RGB,
    DIGIT_GAP,
    DIGIT_SIZE,
    DIGITS_PER_IMAGE,
    DISTRACTOR_SIZE,
    DISTRACTORS_PER_IMAGE,
    IMAGE_SIZE,
    MASK_THRESHOLD,
    MIN_MASK_PIXELS,
    SCALE_RANGE,
)

__all__ = ["resize_u8", "scaled_size", "RenderContext", "render_image"]

_FRAC_BITS = 8  # bilinear weights in 1/256 steps
_ONE = 1 << _FRAC_BITS
_MAX_SCALE_REDRAWS = 25  # per digit, when it has no free position or too small a mask
_MAX_RESTARTS = 100  # per image, when a digit still cannot be placed


@functools.lru_cache(maxsize=4096)
def _axis_table(src: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis (pixel-centre aligned): indices ``i0, i1`` and weights of ``i1`` in 0..256."""
    pos = (np.arange(out, dtype=np.float64) + 0.5) * (src / out) - 0.5
    pos = np.clip(pos, 0.0, src - 1.0)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, src - 1)
    w1 = np.rint((pos - i0) * _ONE).astype(np.int32)
    for arr in (i0, i1, w1):
        arr.setflags(write=False)
    return i0, i1, w1


def resize_u8(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of ``img [H,W]`` or ``[H,W,C]`` uint8 to ``[out_h,out_w(,C)]`` uint8, in exact integer maths."""
    h, w = img.shape[:2]
    y0, y1, wy = _axis_table(h, out_h)
    x0, x1, wx = _axis_table(w, out_w)
    src = img.astype(np.int32)
    extra = (None,) * (img.ndim - 2)
    wy = wy[(slice(None), None, *extra)]
    wx = wx[(slice(None), *extra)]
    rows = src[y0] * (_ONE - wy) + src[y1] * wy  # [out_h, W(,C)], scale 2^8
    full = rows[:, x0] * (_ONE - wx) + rows[:, x1] * wx  # [out_h, out_w(,C)], scale 2^16
    return ((full + (1 << (2 * _FRAC_BITS - 1))) >> (2 * _FRAC_BITS)).astype(np.uint8)


def scaled_size(base: int, scale: float) -> int:
    """Side in pixels of a ``base``-pixel square drawn at ``scale`` (round half up)."""
    return max(1, int(np.floor(base * scale + 0.5)))


def _composite(canvas: np.ndarray, y: int, x: int, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Alpha-composite a flat ``colour [3]`` with opacity ``alpha [h,w]`` (0-255) onto ``canvas`` at (y, x)."""
    h, w = alpha.shape
    region = canvas[y : y + h, x : x + w]
    a = alpha[..., None].astype(np.int32)
    mixed = a * colour + (255 - a) * region + 127
    region[...] = (mixed // 255).astype(np.uint8)


def _noisy_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` colour answers and their RGB: ``COLOR_RGB[answer]`` + N(0, 10) per channel, rounded and clipped."""
    answers = rng.integers(0, len(COLOR_RGB), size=n)
    noise = rng.normal(0.0, COLOR_NOISE_SD, size=(n, 3))
    rgb = np.clip(np.rint(COLOR_RGB[answers].astype(np.float64) + noise), 0, 255).astype(np.int32)
    return answers, rgb


def _free_positions(occupied: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners where an ``h x w`` box covers no occupied pixel (summed-area table)."""
    size = occupied.shape[0]
    if h > size or w > size:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    table = np.zeros((size + 1, size + 1), dtype=np.int32)
    np.cumsum(np.cumsum(occupied, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    window = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    return np.nonzero(window == 0)


@dataclass(frozen=True)
class RenderContext:
    """What drawing needs besides the random generator: the digit pool, MDIST crops, MBG backgrounds, and
    ``clear_border``: the last rows and columns (bottom and right edges) that no digit may touch (0: none)."""

    digits: np.ndarray  # [P,28,28] uint8, the split's pool
    by_class: tuple[np.ndarray, ...]  # indices into ``digits`` of each class
    distractors: bool = False
    backgrounds: object | None = None  # pan.data.backgrounds.Backgrounds, or None for black
    clear_border: int = 0


def _draw_distractors(canvas: np.ndarray, rng: np.random.Generator, ctx: RenderContext) -> None:
    """Paint random 5x5 crops of pool digits, coloured and scaled like digits, anywhere on ``canvas``."""
    lo, hi = DISTRACTORS_PER_IMAGE
    count = int(rng.integers(lo, hi + 1))
    sources = rng.integers(0, ctx.digits.shape[0], size=count)
    _, colours = _noisy_colours(rng, count)
    scales = rng.uniform(*SCALE_RANGE, size=count)
    half = DISTRACTOR_SIZE // 2
    for k in range(count):
        digit = ctx.digits[sources[k]]
        ink = np.flatnonzero(digit >= MASK_THRESHOLD)
        centre = int(ink[rng.integers(ink.size)]) if ink.size else (DIGIT_SIZE // 2) * (DIGIT_SIZE + 1)
        cy = min(max(centre // DIGIT_SIZE, half), DIGIT_SIZE - 1 - half)
        cx = min(max(centre % DIGIT_SIZE, half), DIGIT_SIZE - 1 - half)
        crop = digit[cy - half : cy + half + 1, cx - half : cx + half + 1]
        side = scaled_size(DISTRACTOR_SIZE, float(scales[k]))
        alpha = resize_u8(crop, side, side)
        y, x = rng.integers(0, IMAGE_SIZE - side + 1, size=2)
        _composite(canvas, int(y), int(x), alpha, colours[k])


def _place_digits(
    rng: np.random.Generator, digits: list[np.ndarray], scales: np.ndarray, clear_border: int = 0
) -> list[tuple[int, int, np.ndarray]] | None:
    """Choose scales (redrawing those that do not fit) and non-overlapping positions, largest digit first, no digit
    in the last ``clear_border`` rows or columns.

    Returns ``(y, x, alpha)`` per digit (``alpha`` cropped to the digit's ink bounding box), or ``None`` to restart.
    ``scales`` is updated in place with the scales actually used.
    """
    occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    if clear_border:
        occupied[IMAGE_SIZE - clear_border :, :] = occupied[:, IMAGE_SIZE - clear_border :] = True
    placed: list[tuple[int, int, np.ndarray] | None] = [None] * len(digits)
    for j in np.argsort(-scales, kind="stable"):
        for _ in range(_MAX_SCALE_REDRAWS):
            side = scaled_size(DIGIT_SIZE, float(scales[j]))
            alpha = resize_u8(digits[j], side, side)
            rows = np.flatnonzero(alpha.any(axis=1))
            cols = np.flatnonzero(alpha.any(axis=0))
            if rows.size:
                alpha = alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                if np.count_nonzero(alpha >= MASK_THRESHOLD) >= MIN_MASK_PIXELS:
                    ys, xs = _free_positions(occupied, *alpha.shape)
                    if ys.size:
                        k = int(rng.integers(ys.size))
                        y, x = int(ys[k]), int(xs[k])
                        h, w = alpha.shape
                        g = DIGIT_GAP
                        occupied[max(0, y - g) : y + h + g, max(0, x - g) : x + w + g] = True
                        placed[j] = (y, x, alpha)
                        break
            scales[j] = rng.uniform(*SCALE_RANGE)
        else:
            return None
    return placed  # type: ignore[return-value]


def render_image(
    rng: np.random.Generator, ctx: RenderContext, num_digits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image with ``num_digits`` digits of distinct classes.

    Returns ``image [100,100,3] uint8``, ``instances [100,100] uint8`` (digit ``i`` has id ``i + 1``), and per digit
    ``classes [n] int64``, ``answers [n] int64`` (index into ``COLOR_NAMES``), ``scales [n] float64``.
    """
    lo, hi = DIGITS_PER_IMAGE
    if not lo <= num_digits <= hi:
        raise ValueError(f"num_digits must be in [{lo}, {hi}], got {num_digits}")
    for _ in range(_MAX_RESTARTS):
        if ctx.backgrounds is not None:
            canvas = ctx.backgrounds.sample(rng)
        else:
            canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        if ctx.distractors:
            _draw_distractors(canvas, rng, ctx)
        classes = rng.permutation(10)[:num_digits].astype(np.int64)
        class_sizes = np.array([ctx.by_class[c].size for c in classes])
        picks = rng.integers(0, class_sizes)
        digits = [ctx.digits[ctx.by_class[c][p]] for c, p in zip(classes, picks, strict=True)]
        answers, colours = _noisy_colours(rng, num_digits)
        scales = rng.uniform(*SCALE_RANGE, size=num_digits)
        placed = _place_digits(rng, digits, scales, ctx.clear_border)
        if placed is None:
            continue
        instances = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for i, (y, x, alpha) in enumerate(placed):
            _composite(canvas, y, x, alpha, colours[i])
            h, w = alpha.shape
            instances[y : y + h, x : x + w][alpha >= MASK_THRESHOLD] = i + 1
        return canvas, instances, classes, answers.astype(np.int64), scales
    raise RuntimeError(f"could not place {num_digits} digits after {_MAX_RESTARTS} attempts")
