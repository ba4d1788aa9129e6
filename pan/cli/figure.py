"""`pan figure`: paper Fig. 1/6-style attention panels of a trained checkpoint."""

from __future__ import annotations

import sys

from pan.cli.argtypes import backend_problem, device_name, non_negative_int, positive_int
from pan.cli.outputs import OutputError, check_file, make_parent


def _fail(message: str) -> int:
    print(f"pan figure: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    problem = backend_problem(args.backend, args.device)
    if problem is not None:
        return _fail(f"--backend {args.backend} cannot run on --device {args.device}: {problem}")
    if args.dataset in ("vg", "voc07"):
        try:
            check_file(args.out, "--out", overwrite=args.overwrite, suffix=".png")
        except OutputError as err:
            return _fail(str(err))
        from pan.cli import figure_real

        return figure_real.run(args)
    from pan.cli.eval import checkpoint_config
    from pan.data import DEFAULT_CACHE_DIR, make_dataset
    from pan.train import load_model
    from pan.train.distributed import resolve_device
    from pan.viz import attention_figure, distinct_image_examples

    device = resolve_device(args.device)
    try:
        config = checkpoint_config(args.checkpoint)  # first: an unusable checkpoint is the first thing to hear of
        if config.get("kind") == "real-images":
            return _fail(f"--checkpoint {args.checkpoint} is a Visual Genome model: give --dataset vg (or voc07) "
                         "and --data-dir DIR")
        check_file(args.out, "--out", overwrite=args.overwrite, suffix=".png")
        model, config = load_model(args.checkpoint, backend=args.backend, device=device)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    dataset = args.dataset or config.dataset
    try:
        data = make_dataset(dataset, args.split, args.num_examples, seed=config.data_seed,
                            mnist_dir=config.mnist_dir, cache_dir=DEFAULT_CACHE_DIR)
    except (ValueError, FileNotFoundError) as err:
        return _fail(str(err))
    examples = args.examples if args.examples is not None else distinct_image_examples(data, 4)
    if max(examples) >= len(data.query):
        return _fail(f"--examples must be < --num-examples ({len(data.query)})")
    path = attention_figure(model, data, examples, make_parent(args.out), device=device,
                            title=f"{config.model} on {dataset}/{args.split}")
    print(f"wrote {path}")
    return 0


def register(subparsers, name: str, help: str) -> None:
    from pan.data import DATASETS, SPLITS
    from pan_kernels import BACKENDS

    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by pan train (e.g. runs/NAME/best.pt)")
    p.add_argument("--dataset", choices=(*DATASETS, "vg", "voc07"),
                   help="default: the checkpoint's dataset; vg / voc07 read a local copy in --data-dir")
    p.add_argument("--data-dir", default=None, help="local Visual Genome or VOC 2007 copy (with --dataset vg|voc07)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--examples", type=non_negative_int, nargs="+",
                   help="example indices, one row each (default: one example from each of the first 4 images)")
    p.add_argument("--num-examples", type=positive_int, default=1000, help="size of the split generated to draw from")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--out", default="attention.png", help="output PNG file (default attention.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)
