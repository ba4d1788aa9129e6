"""Where each attention layer of a trained model looks: the mean of its map on the queried digit's pixels, on the
other digits' pixels and on the background, over the first N validation examples (docs/training-notes.md §8-9).

    python scripts/gate_regions.py runs/NAME/best.pt [--num-examples 300] [--seed 0]

Each map [B, h, w] is taken to image space as, for every pixel, the mean value of the map locations whose receptive
field covers it; a region's value is the mean of that over the region's covered pixels (NaN for an empty region).
The checkpoint is read with `pan.train.load_model` (plain data only), the data with `pan.data.make_dataset`.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

REGIONS = ("target", "other digits", "background")


def location_mean_in_image(values: torch.Tensor, geometry) -> torch.Tensor:
    """values [B, h, w] -> [B, 100, 100]: per pixel, the mean of the values of the locations covering it (NaN where
    none does)."""
    from pan.evaluation.tpr import spread_to_image

    summed = spread_to_image(values.float(), geometry)
    covering = spread_to_image(torch.ones_like(values, dtype=torch.float32), geometry)
    return torch.where(covering > 0, summed / covering.clamp_min(1e-30), torch.full_like(summed, math.nan))


@torch.no_grad()
def region_means(model, dataset, num_examples: int) -> list[dict[str, float]]:
    """One dict per attention layer: REGIONS -> mean map value there, over examples 0..num_examples-1."""
    from pan.evaluation.metrics import batch_images

    model.eval()
    index = np.arange(num_examples)
    images, target = batch_images(dataset, index, "cpu")
    digits = torch.as_tensor(dataset.instances[dataset.image_index[index]]) > 0
    masks = (target, digits & ~target, ~digits)
    out = model(images, torch.as_tensor(dataset.query[index]))
    rows = []
    for attention, geometry in zip(out.attention, model.attention_geometry):
        pixel = location_mean_in_image(attention, geometry)
        row = {}
        for name, mask in zip(REGIONS, masks):
            inside = mask & ~pixel.isnan()
            row[name] = pixel[inside].mean().item() if inside.any() else math.nan
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gate_regions.py", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint written by pan train (e.g. runs/NAME/best.pt)")
    p.add_argument("--num-examples", type=int, default=300, help="validation examples to average over (default 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    args = p.parse_args(argv)
    if args.num_examples < 1:
        p.error(f"--num-examples must be a positive integer, got {args.num_examples}")

    from pan.data import make_dataset
    from pan.train import load_model
    from pan.train.checkpoint import CheckpointError

    try:
        model, config = load_model(args.checkpoint, backend="torch")
    except CheckpointError as err:
        p.error(f"checkpoint: {err}")
    if not getattr(model, "attention_geometry", None):
        p.error(f"checkpoint: model {config.model!r} has no attention maps")
    dataset = make_dataset(config.dataset, "val", args.num_examples, seed=args.seed)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"{config.model} on {args.num_examples} {config.dataset} val examples (seed {args.seed}): mean map value")
    for k, row in enumerate(region_means(model, dataset, args.num_examples)):
        print(f"  layer {k}: " + "  ".join(f"{name} {value:.4f}" for name, value in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
