"""`pan eval`: colour accuracy, TPR and accuracy by target scale of a trained checkpoint."""

from __future__ import annotations

from pan.cli.argtypes import positive_int


def run(args) -> int:
    if args.dataset in ("vg", "voc07"):
        from pan.cli import eval_real

        return eval_real.run(args)
    from pan.evaluation.metrics import scale_bin_labels
    from pan.evaluation.run import evaluate_run

    if args.checkpoint is None and args.model is None:
        print("pan eval: give --checkpoint PATH (a trained run's best.pt) or --model uniform")
        return 2
    try:
        r = evaluate_run(checkpoint=args.checkpoint, model_name=args.model, dataset=args.dataset, split=args.split,
                         num_examples=args.num_examples, seed=args.seed, backend=args.backend, device=args.device,
                         batch_size=args.batch_size, out=args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"pan eval: {err}")
        return 2
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
    p.add_argument("--dataset", choices=(*DATASETS, "vg", "voc07"),
                   help="default: the checkpoint's dataset; vg / voc07 read a local copy in --data-dir")
    p.add_argument("--data-dir", default=None, help="local Visual Genome or VOC 2007 copy (with --dataset vg|voc07)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--num-examples", type=positive_int, default=10_000)
    p.add_argument("--seed", type=int, help="data seed (default: the checkpoint's)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=200)
    p.add_argument("--out", help="result JSON (default: next to the checkpoint)")
    p.set_defaults(func=run)
