"""`pan train --dataset vg --data-dir DIR`: the VGG-16 PAN on Visual Genome attributes (paper §4.2), through
pan.train.real_images. Shares `pan train`'s parser; this module adds the real-image options and runs them."""

from __future__ import annotations

import argparse
import os
import sys

from pan.cli.argtypes import non_negative_int, positive_float, positive_int

REAL_IMAGE_DATASETS = ("vg", "voc07")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("real images (--dataset vg; paper §4.2)")
    g.add_argument("--data-dir", default=None, help="local Visual Genome copy (image_data.json, objects.json, "
                   "attributes.json, VG_100K/) or VOC 2007 (VOCdevkit/VOC2007); nothing is downloaded")
    g.add_argument("--prior", action="store_true", help="the 'w/ prior' variant: fuse the query by one fc layer")
    g.add_argument("--backbone-weights", default=None, help="local torchvision VGG-16 state dict (ImageNet)")
    g.add_argument("--backbone", default="vgg16", choices=("vgg16", "small-cnn"),
                   help="vgg16 (the paper's) or small-cnn (4 conv blocks from scratch: CPU minutes on vg-synth)")
    g.add_argument("--backbone-lr", type=positive_float, default=None, help="Adam lr of VGG-16 (default lr / 10)")
    g.add_argument("--image-size", type=positive_int, default=224, help="input size (default 224)")
    g.add_argument("--min-count", type=non_negative_int, default=100,
                   help="keep classes / attributes seen more than this often (paper 100)")
    g.add_argument("--max-train", type=non_negative_int, default=0, help="cap on training examples (0 = all)")
    g.add_argument("--max-val", type=non_negative_int, default=0, help="cap on validation examples (0 = all)")
    g.add_argument("--workers", type=non_negative_int, default=2, help="data-loading processes (default 2)")


#: `pan train` options of the synthetic-data runs (dest, flag) that a real-image run has no use for: given with
#: --dataset vg / voc07 they are refused rather than silently ignored.
_SYNTHETIC_ONLY = tuple((dest, "--" + dest.replace("_", "-")) for dest in (
    "num_train", "num_val", "head_dropout", "augment_shift", "init_from", "data_seed", "train_file", "val_file",
    "mnist_dir", "cache_dir", "optimizer", "lr_grid", "patience", "decay_start", "decay_every", "gate_sparsity",
    "gate_sparsity_kind", "gate_sparsity_start", "eval_batch_size"))
_SYNTHETIC_ONLY_SWITCHES = (("no_cache", "--no-cache"), ("compile", "--compile"), ("deterministic", "--deterministic"))


def synthetic_only_flag(args: argparse.Namespace) -> str | None:
    """The first synthetic-data option given on a real-image command line, or None."""
    for dest, flag in _SYNTHETIC_ONLY:
        if getattr(args, dest) is not None:
            return flag
    for dest, flag in _SYNTHETIC_ONLY_SWITCHES:
        if getattr(args, dest):
            return flag
    if args.compile_mode != "default":
        return "--compile-mode"
    if args.recipe is not None:
        return "--recipe"
    return None


def run(args: argparse.Namespace) -> int:
    from pan.train.checkpoint import CheckpointError, ResumeError
    from pan.train.divergence import TrainingDiverged
    from pan.train.real_images import RealImageConfig, train_real_images

    def fail(message: str) -> int:
        print(f"pan train: error: {message}", file=sys.stderr)
        return 2

    flag = synthetic_only_flag(args)
    if flag is not None:
        return fail(f"{flag} applies to the MREF / MDIST / MBG runs, not to --dataset {args.dataset} (its "
                    "options: pan train --help, 'real images')")
    if args.data_dir is None:
        return fail(f"--dataset {args.dataset} needs --data-dir DIR (a local copy; nothing is downloaded)")
    lr = args.lr if args.lr is not None else 1e-4
    out = args.out if args.out is not None else f"runs/{args.model}-{args.dataset}-seed{args.seed}"
    try:
        cfg = RealImageConfig(
            data_dir=args.data_dir, out=out, dataset=args.dataset, model=args.model, prior=args.prior,
            backbone=args.backbone,
            backbone_weights=args.backbone_weights, epochs=args.epochs or 10, batch_size=args.batch_size or 32,
            lr=lr, backbone_lr=args.backbone_lr if args.backbone_lr is not None else lr / 10,
            decay_factor=args.decay_factor or 0.9, image_size=args.image_size, min_count=args.min_count,
            max_train=args.max_train, max_val=args.max_val, num_workers=args.workers, seed=args.seed,
            backend=args.backend, device=args.device, amp="auto" if args.amp is None else args.amp,
            clip_norm=args.clip_norm or None, channels_last=bool(args.channels_last),
            checkpoint_every=10.0 if args.checkpoint_every is None else args.checkpoint_every)
        cfg.validate()
        from pathlib import Path

        if args.resume and not (Path(out) / "last.pt").is_file():
            return fail(f"--resume: no checkpoint at {Path(out) / 'last.pt'} (train without --resume first)")
        from pan.cli.outputs import check_run_dir, clear_run

        check_run_dir(out, "--out", overwrite=args.overwrite, resume=args.resume)  # an OutputError is a ValueError
        if args.overwrite and not args.resume and int(os.environ.get("RANK", "0")) == 0:
            clear_run(out)
        summary = train_real_images(cfg, resume=args.resume, progress=not args.quiet)
    except (ValueError, ResumeError, CheckpointError) as err:
        return fail(str(err))
    except TrainingDiverged as err:
        if summary_rank(getattr(err, "summary", None)) == 0:
            print(f"pan train: error: {err}", file=sys.stderr)
        return 1
    if summary_rank(summary) != 0:
        return 130 if summary["interrupted"] else 0
    best = summary["best_weighted_map"]
    print(f"{summary['epochs_done']} epochs: best val weighted mAP "
          f"{'-' if best is None else f'{100 * best:.2f}%'} at epoch {summary['best_epoch']}; checkpoint {out}/best.pt")
    if summary["interrupted"]:
        print("interrupted: a checkpoint was saved; run the same command with --resume to continue", file=sys.stderr)
        return 130
    return 0


def summary_rank(summary: dict | None) -> int:
    """The torchrun rank a summary came from (0 outside torchrun)."""
    return (summary or {}).get("rank", 0)
