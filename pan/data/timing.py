"""Time the generation of the paper-sized datasets (no cache): ``python -m pan.data.timing [--datasets ...]``."""

from __future__ import annotations

import argparse
import json
import os
import time

from pan.data.backgrounds import load_backgrounds
from pan.data.constants import DATASETS, PAPER_SIZES
from pan.data.generate import make_dataset
from pan.data.mnist import load_mnist


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pan.data.timing", description=__doc__)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's split sizes")
    parser.add_argument("--mnist-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the timings to this JSON file")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    load_mnist(args.mnist_dir)
    load_backgrounds()
    setup = time.perf_counter() - t0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpus={cpus} workers={args.workers or 'auto'} source loading={setup:.2f}s")
    report = {"cpus": cpus, "workers": args.workers, "source_loading_s": setup, "datasets": {}}
    for name in args.datasets:
        total = 0.0
        splits = {}
        for split, size in PAPER_SIZES.items():
            n = max(1, int(size * args.scale))
            start = time.perf_counter()
            ds = make_dataset(name, split, n, seed=0, mnist_dir=args.mnist_dir, cache_dir=None, workers=args.workers)
            elapsed = time.perf_counter() - start
            total += elapsed
            splits[split] = {"examples": n, "images": ds.num_images, "seconds": elapsed}
            print(f"{name:5s} {split:5s} {n:6d} examples {ds.num_images:5d} images  {elapsed:6.2f}s")
        print(f"{name:5s} total {total:6.2f}s")
        report["datasets"][name] = {"splits": splits, "total_s": total}
    if args.json:
        import torch

        from pan.provenance import make_header

        report = {"header": make_header(torch.device("cpu")), **report}
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
