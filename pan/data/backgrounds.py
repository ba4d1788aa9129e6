"""MBG backgrounds: random 100x100 crops of natural photographs at several scales.

Default photographs: the lossless (PNG) colour and grey photographs bundled inside scikit-image, so no download is
needed and decoding is bit-exact everywhere (its JPEG photographs are left out for that reason). Each photograph is
turned into RGB uint8 and kept at integer downscales 1/1, 1/2, 1/3, 1/4 (box filter, integer maths) while its short
side stays >= 100 px; a photograph smaller than 100 px is first upscaled. A crop picks a photograph, then a scale,
then a position, uniformly, and is mirrored left-right with probability 1/2.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pan.data.constants import IMAGE_SIZE
from pan.data.render import resize_u8, scaled_size

__all__ = ["DEFAULT_PHOTOS", "Backgrounds", "load_backgrounds", "to_rgb_u8"]

#: scikit-image photographs used by default (all bundled PNG files).
DEFAULT_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "motorcycle_left",
    "motorcycle_right",
    "camera",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
)
_MAX_DOWNSCALE = 4
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def to_rgb_u8(photo: np.ndarray, name: str = "photo") -> np.ndarray:
    """Any grey / RGB / RGBA image (uint8, bool or float in [0,1]) as ``[H,W,3] uint8``."""
    arr = np.asarray(photo)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"background {name}: unsupported pixel type {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    else:
        raise ValueError(f"background {name}: expected a grey, RGB or RGBA image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor x factor`` blocks of ``[H,W,3] uint8`` (rounded half up), trailing rows/cols dropped."""
    if factor == 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    blocks = img[:h, :w].astype(np.int32).reshape(h // factor, factor, w // factor, factor, 3)
    total = blocks.sum(axis=(1, 3))
    n = factor * factor
    return ((total + n // 2) // n).astype(np.uint8)


def _pyramid(photo: np.ndarray) -> tuple[np.ndarray, ...]:
    short = min(photo.shape[:2])
    if short < IMAGE_SIZE:
        zoom = IMAGE_SIZE / short
        photo = resize_u8(
            photo,
            max(IMAGE_SIZE, scaled_size(photo.shape[0], zoom)),
            max(IMAGE_SIZE, scaled_size(photo.shape[1], zoom)),
        )
        short = min(photo.shape[:2])
    levels = [_box_downscale(photo, f) for f in range(1, _MAX_DOWNSCALE + 1) if short // f >= IMAGE_SIZE]
    for level in levels:
        level.setflags(write=False)
    return tuple(levels)


@dataclass(frozen=True)
class Backgrounds:
    """Photographs prepared for cropping; ``levels[p]`` holds photograph ``p`` at each scale (``[H,W,3] uint8``)."""

    names: tuple[str, ...]
    levels: tuple[tuple[np.ndarray, ...], ...]
    fingerprint: str

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A fresh, writable ``[100,100,3] uint8`` crop."""
        photo = self.levels[int(rng.integers(len(self.levels)))]
        level = photo[int(rng.integers(len(photo)))]
        y = int(rng.integers(level.shape[0] - IMAGE_SIZE + 1))
        x = int(rng.integers(level.shape[1] - IMAGE_SIZE + 1))
        crop = level[y : y + IMAGE_SIZE, x : x + IMAGE_SIZE]
        if rng.integers(2):
            crop = crop[:, ::-1]
        return np.array(crop, dtype=np.uint8, order="C")


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"scikit-image has no photograph {name!r}")
    return loader()


def _build(names: tuple[str, ...], photos: list[np.ndarray]) -> Backgrounds:
    digest = hashlib.sha256()
    levels = []
    for name, photo in zip(names, photos, strict=True):
        rgb = to_rgb_u8(photo, name)
        digest.update(f"{name}:{rgb.shape}".encode())
        digest.update(rgb.tobytes())
        levels.append(_pyramid(rgb))
    if not levels:
        raise ValueError("no background photographs")
    return Backgrounds(names, tuple(levels), fingerprint=digest.hexdigest())


@functools.lru_cache(maxsize=4)
def _load_cached(backgrounds_dir: str | None, stamp: tuple = ()) -> Backgrounds:
    if backgrounds_dir is None:
        try:
            photos = [_skimage_photo(name) for name in DEFAULT_PHOTOS]
        except Exception as err:  # a missing optional data file must say what to do
            raise RuntimeError(
                f"could not load scikit-image's bundled photographs ({err}); pass backgrounds_dir= instead"
            ) from err
        return _build(DEFAULT_PHOTOS, photos)
    import skimage.io

    directory = Path(backgrounds_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"backgrounds directory not found: {directory}")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(_IMAGE_SUFFIXES)}) in backgrounds directory {directory}")
    return _build(tuple(p.name for p in files), [skimage.io.imread(p) for p in files])


def load_backgrounds(backgrounds_dir: str | os.PathLike | None = None) -> Backgrounds:
    """The MBG photographs: scikit-image's bundled ones (``None``) or every image file in ``backgrounds_dir``."""
    if backgrounds_dir is None:
        return _load_cached(None)
    directory = Path(backgrounds_dir).expanduser().resolve()
    stamp = ()
    if directory.is_dir():  # reload when the directory's files change
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(directory.iterdir()))
    return _load_cached(str(directory), stamp)
