"""`pan eval`: colour accuracy, TPR and accuracy by target scale of a trained checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from pan.cli.argtypes import backend_problem, device_name, non_negative_int, positive_int
from pan.cli.outputs import OutputError, check_file

_REAL = ("vg", "voc07")


def _fail(message: str) -> int:
    print(f"pan eval: error: {message}", file=sys.stderr)
    return 2


def checkpoint_config(path: str, arg: str = "--checkpoint") -> dict:
    """The training config a checkpoint records; ``ValueError`` naming ``arg`` when it cannot be read."""
    from pan.train.checkpoint import CheckpointError, load_checkpoint

    if Path(path).is_dir():
        raise ValueError(f"{arg} {path} is a directory; give a checkpoint file (e.g. {Path(path) / 'best.pt'})")
    try:
        return load_checkpoint(path)["config"]
    except CheckpointError as err:
        raise ValueError(f"{arg}: {err}") from None


def run(args) -> int:
    if args.data_file is not None:
        given = [f for f, v in (("--split", args.split), ("--num-examples", args.num_examples), ("--seed", args.seed),
                                ("--dataset", args.dataset), ("--model", args.model)) if v is not None]
        if given:
            return _fail(f"--data-file brings its own examples; {given[0]} does not go with it")
        if not Path(args.data_file).is_file():
            return _fail(f"--data-file {args.data_file}: no such file")
    args.split = args.split or "test"
    args.num_examples = args.num_examples or 10_000
    problem = backend_problem(args.backend, args.device)
    if problem is not None:
        return _fail(f"--backend {args.backend} cannot run on --device {args.device}: {problem}")
    if args.dataset in _REAL:
        from pan.cli import eval_real

        return eval_real.run(args)
    from pan.evaluation.metrics import scale_bin_labels
    from pan.evaluation.run import evaluate_run

    if args.checkpoint is None and args.model is None:
        return _fail("give --checkpoint PATH (a trained run's best.pt) or --model uniform")
    if args.checkpoint is not None and args.model is not None:
        return _fail("--model uniform evaluates the untrained baseline; it does not go with --checkpoint")
    if args.checkpoint is None and args.dataset is None:
        return _fail("--model uniform needs --dataset (mref, mdist or mbg)")
    dataset = args.dataset
    if args.checkpoint is not None:
        try:
            config = checkpoint_config(args.checkpoint)
        except ValueError as err:
            return _fail(str(err))
        if config.get("kind") == "real-images" or config.get("dataset") in _REAL:
            return _fail(f"--checkpoint {args.checkpoint} is a Visual Genome model: give --dataset vg (or voc07) "
                         "and --data-dir DIR")
        dataset = dataset or config.get("dataset")
    base = Path(args.checkpoint).parent if args.checkpoint else Path("runs") / "uniform"
    data_file = Path(args.data_file) if args.data_file is not None else None
    name = f"{data_file.parent.name}_{data_file.stem}" if data_file is not None else f"{dataset}_{args.split}"
    out = args.out if args.out is not None else str(base / f"eval_{name}.json")
    try:
        check_file(out, "--out", overwrite=args.overwrite, suffix=".json")
    except OutputError as err:
        return _fail(str(err) if args.out is not None else f"{err} (the default --out)")
    try:
        r = evaluate_run(checkpoint=args.checkpoint, model_name=args.model, dataset=dataset, split=args.split,
                         num_examples=args.num_examples, seed=args.seed, backend=args.backend, device=args.device,
                         batch_size=args.batch_size, out=out, data_file=args.data_file)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(f"{r['model']} on {r['dataset']}/{r['split']} ({r['num_examples']} examples): "
          f"accuracy {100 * r['accuracy']:.2f}%  TPR {100 * r['tpr']:.2f}%")
    for label in scale_bin_labels():
        b = r["accuracy_by_scale"][label]
        acc = "—" if b["accuracy"] is None else f"{100 * b['accuracy']:.2f}%"
        print(f"  scale {label}: {acc} ({b['count']} examples)")
    print(f"wrote {r['out']}")
    return 0


def register(subparsers, name: str, help: str) -> None:
    from pan.data import DATASETS, SPLITS
    from pan_kernels import BACKENDS

    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--checkpoint", help="a checkpoint written by pan train (e.g. runs/NAME/best.pt)")
    p.add_argument("--model", choices=["uniform"], help="evaluate the parameter-free uniform baseline instead")
    p.add_argument("--dataset", choices=(*DATASETS, *_REAL),
                   help="default: the checkpoint's dataset; vg / voc07 read a local copy in --data-dir")
    p.add_argument("--data-dir", default=None, help="local Visual Genome or VOC 2007 copy (with --dataset vg|voc07)")
    p.add_argument("--split", choices=SPLITS, default=None, help="default test")
    p.add_argument("--num-examples", type=positive_int, default=None, help="default 10000")
    p.add_argument("--data-file", default=None,
                   help="evaluate on the examples of a `pan data generate` file (its dataset, split and seed come "
                        "from the file) instead of a generated --split")
    p.add_argument("--seed", type=non_negative_int, help="data seed (default: the checkpoint's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=positive_int, default=200)
    p.add_argument("--out", help="result JSON (default: next to the checkpoint, eval_DATASET_SPLIT.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result file")
    p.set_defaults(func=run)
