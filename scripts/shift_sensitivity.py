"""How much a trained MREF model's accuracy depends on where exactly its images sit: each image moved by s pixels
along both axes (zero fill), against the same images unmoved.

    python scripts/shift_sensitivity.py runs/NAME/best.pt [--splits train,val] [--num-examples 4000]
        [--shifts 1,2,3,4,8] [--out shift.json]

An image is used at shift s when all its ink can move s pixels down or up and s pixels right or left (down and right
are preferred), so every digit stays whole; ``examples`` says how many qualified. A convolutional network that reads
digits answers a moved image as the unmoved one; one that has memorised its training images pixel by pixel does not,
so the drop on the training split against the drop on validation measures that part of the memorisation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from pan.evaluation.report import add_out_argument, check_out, emit_report, load_checkpoint_model


def _int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def shift_accuracy(model, data, shifts: list[int], num_examples: int, batch: int = 250) -> dict:
    """``{s: {"examples", "unshifted", "shifted"}}``: accuracy of ``model`` on the first ``num_examples`` of ``data``
    (a PanDataset) that can move ``s`` pixels along both axes, unmoved and moved (model in eval mode, fp32)."""
    from pan.evaluation.metrics import batch_images
    from pan.train.augment import shift_ranges, translate

    n = min(num_examples, len(data))
    out = {}
    for s in shifts:
        hits = {"unshifted": 0, "shifted": 0}
        kept = 0
        for start in range(0, n, batch):
            idx = np.arange(start, min(start + batch, n))
            images, _ = batch_images(data, idx, "cpu")
            dy_min, dy_max, dx_min, dx_max = shift_ranges(images, s)
            dy = torch.where(dy_max >= s, s, -s)
            dx = torch.where(dx_max >= s, s, -s)
            ok = ((dy_max >= s) | (dy_min <= -s)) & ((dx_max >= s) | (dx_min <= -s))
            if not ok.any():
                continue
            query = torch.from_numpy(data.query[idx])[ok]
            answer = data.answer[idx][ok.numpy()]
            moved = translate(images[ok], dy[ok], dx[ok])
            with torch.no_grad():
                for key, x in (("unshifted", images[ok]), ("shifted", moved)):
                    hits[key] += int((model(x, query).log_probs.argmax(1).numpy() == answer).sum())
            kept += int(ok.sum())
        out[s] = {"examples": kept, **{k: v / kept if kept else None for k, v in hits.items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--splits", default="train,val", help="comma-separated: train, val, test (default train,val)")
    p.add_argument("--num-examples", type=int, default=4000, help="first N examples of each split (default 4000)")
    p.add_argument("--shifts", type=_int_list, default=[1, 2, 3, 4, 8], help="pixels (default 1,2,3,4,8)")
    p.add_argument("--cache-dir", default=None, help="dataset cache (default $PAN_CACHE_DIR or ~/.cache/pan/data)")
    add_out_argument(p)
    a = p.parse_args(argv)
    check_out(p, a.out)
    splits = [s.strip() for s in a.splits.split(",") if s.strip()]
    if not splits or any(s not in ("train", "val", "test") for s in splits):
        p.error(f"--splits must name train, val or test, got {a.splits!r}")
    if a.num_examples < 1:
        p.error(f"--num-examples must be >= 1, got {a.num_examples}")
    from pan.data import DEFAULT_CACHE_DIR, make_dataset
    model, config = load_checkpoint_model(p, a.checkpoint)
    sizes = {"train": config.num_train, "val": config.num_val, "test": 10_000}
    result = {"checkpoint": str(a.checkpoint), "num_examples": a.num_examples, "splits": {}}
    for split in splits:
        data = make_dataset(config.dataset, split, sizes[split], seed=config.data_seed, mnist_dir=config.mnist_dir,
                            cache_dir=a.cache_dir or DEFAULT_CACHE_DIR)
        result["splits"][split] = shift_accuracy(model, data, a.shifts, a.num_examples)
    emit_report(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
