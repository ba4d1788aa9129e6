"""A tiny, easy MREF variant for learning tests: two digits per image, one 0 and one 1, in different colours.

Each image has a 0 in one half and a 1 in the other (sides random, 40 px, random height), coloured with two different
answers; both digits yield an example. A query-blind rule cannot beat 50% (the two answers of an image differ),
while a model that finds the queried digit can reach 100%.
"""

from __future__ import annotations

import numpy as np

from pan.data import PanDataset
from pan.data.constants import COLOR_RGB, IMAGE_SIZE
from pan.data.mnist import load_mnist
from pan.data.render import resize_u8

DIGIT_PX = 40


def make_easy_mref(num_images: int, seed: int) -> PanDataset:
    """``2 * num_images`` examples over ``num_images`` images (train-pool digits), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    pool = load_mnist().train
    images = np.zeros((num_images, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    instances = np.zeros((num_images, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    image_index, query, answer, target = [], [], [], []
    for i in range(num_images):
        colours = rng.choice(len(COLOR_RGB), size=2, replace=False)
        zero_left = rng.random() < 0.5
        for inst, cls in enumerate((0, 1), start=1):
            digit = pool.images[rng.choice(pool.by_class[cls])]
            alpha = resize_u8(digit, DIGIT_PX, DIGIT_PX).astype(np.int32)
            x = (5 if (cls == 0) == zero_left else 55) + int(rng.integers(0, 6))
            y = int(rng.integers(0, IMAGE_SIZE - DIGIT_PX))
            region = images[i, y:y + DIGIT_PX, x:x + DIGIT_PX]
            region[...] = (alpha[..., None] * COLOR_RGB[colours[inst - 1]] + (255 - alpha[..., None]) * region
                           + 127) // 255
            instances[i, y:y + DIGIT_PX, x:x + DIGIT_PX][alpha >= 128] = inst
            image_index.append(i)
            query.append(cls)
            answer.append(colours[inst - 1])
            target.append(inst)
    data = PanDataset(images=images, instances=instances, image_index=np.array(image_index, np.int64),
                      query=np.array(query, np.int64), answer=np.array(answer, np.int64),
                      target=np.array(target, np.int64), scale=np.full(len(query), DIGIT_PX / 28, np.float32),
                      meta={"name": "easy-mref", "seed": seed})
    data.validate()
    return data
