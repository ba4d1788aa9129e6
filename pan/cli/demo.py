"""`pan demo`: the main job on embedded defaults — generate MREF, train PAN[H]+CTX, report accuracy and TPR against
the baselines that would fool you (uniform attention, the query-blind answer), draw the attention of a few test
examples. Default: the `demo` recipe (the `cpu` recipe plus the focus term on the gates) for as many epochs as fit
`--minutes` (15) on this machine; `--full`: the paper's recipe (a GPU run)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from pan.cli.argtypes import positive_float, positive_int

# preset: (training recipe of pan.train.recipes, test examples)
PRESETS = {"cpu": ("demo", 1_000), "full": ("paper", 10_000)}
# what fitting the cpu preset to --minutes sets
_FITTED_FIELDS = ("max_epochs", "patience", "decay_start")


def run(args) -> int:
    from pan.evaluation.run import evaluate_run
    from pan.train import CheckpointError, ResumeError, TrainConfig, load_model, train
    from pan.train.recipes import recipe_settings

    preset = "full" if args.full else "cpu"
    recipe, n_test = PRESETS[preset]
    settings = recipe_settings(recipe)
    if args.epochs:
        settings["max_epochs"] = args.epochs
    out = Path(args.out)
    start = time.time()
    try:
        config = TrainConfig(model=args.model, recipe=recipe, dataset="mref", backend=args.backend,
                             device=args.device, out_dir=str(out), resume=args.resume, overwrite=args.overwrite,
                             quiet=args.quiet, seed=args.seed, **settings)
        budget = ""
        if preset == "cpu" and not args.epochs:
            fields, budget = _fit_to_budget(config, args, n_test)
            config = TrainConfig.from_dict({**config.to_dict(), **fields})
        print(f"pan demo: {args.model} on MREF ({config.num_train} train / {config.num_val} val / {n_test} test "
              f"examples), recipe {recipe}: {config.optimizer} lr {config.lr:g}, batch {config.batch_size}, "
              f"{config.max_epochs} epochs{budget}, backend {args.backend}, device {args.device}", flush=True)
        summary = train(config)
    except (ResumeError, CheckpointError) as err:
        print(f"pan demo: {err}")
        return 2
    if summary["stopped"] == "interrupted":
        print(f"interrupted; continue with: pan demo --resume --out {out}")
        return 130
    result = evaluate_run(checkpoint=summary["checkpoint"], split="test", num_examples=n_test, backend=args.backend,
                          device=args.device)
    figure = out / "attention.png"
    model, config = load_model(summary["checkpoint"], backend=args.backend, device=result["device"])
    from pan.data import make_dataset
    from pan.viz import attention_figure, distinct_image_examples

    test = make_dataset("mref", "test", n_test, seed=config.data_seed)
    attention_figure(model, test, distinct_image_examples(test, 6), figure, device=result["device"],
                     title=f"{args.model} on MREF test")
    seconds = time.time() - start
    import torch

    from pan.evaluation.baselines import query_blind_accuracy, uniform_tpr
    from pan.provenance import make_header

    blind, uniform = query_blind_accuracy(test), uniform_tpr(test)
    report = {"header": make_header(torch.device(result["device"])), "model": args.model,
              "accuracy": result["accuracy"], "tpr": result["tpr"], "query_blind_accuracy": blind,
              "uniform_tpr": uniform, "accuracy_by_scale": result["accuracy_by_scale"],
              "best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "wall_seconds": round(seconds, 1),
              "preset": preset, "recipe": recipe, "device": result["device"], "backend": args.backend,
              "minutes_budget": None if args.epochs or args.full else args.minutes,
              "amp": config.amp, "images_per_s": (summary["last_epoch_metrics"] or {}).get("images_per_s")}
    (out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"test accuracy {100 * result['accuracy']:.2f}%   (query-blind answer: {100 * blind:.2f}%, chance 20%)")
    print(f"test TPR      {100 * result['tpr']:.2f}%   (uniform attention: {100 * uniform:.2f}%)")
    precision = "bf16 autocast" if config.amp else "fp32"
    print(f"best epoch {summary['best_epoch']} of {summary['epochs']} ({precision}), {seconds:.0f} s in all")
    print(f"wrote {figure}, {result['out']}, {out / 'demo.json'}")
    return 0


def _fit_to_budget(config, args, n_test: int) -> tuple[dict, str]:
    """The epochs that fit ``args.minutes`` on this machine (`pan.train.budget`), as TrainConfig fields, and the note
    the demo prints. A resumed demo keeps the schedule its config.json recorded."""
    from pan.train.budget import fit_schedule, measure_images_per_s
    from pan.train.distributed import resolve_device

    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        recorded = json.loads(saved.read_text())
        return {k: recorded[k] for k in _FITTED_FIELDS}, " (the interrupted run's schedule)"
    ips = measure_images_per_s(config, resolve_device(config.device))
    plan = fit_schedule(ips, 60 * args.minutes, num_train=config.num_train, num_val=config.num_val + n_test)
    return {k: plan[k] for k in _FITTED_FIELDS}, (
        f" (fitted to {args.minutes:g} minutes at a measured ~{ips:.0f} training images/s, "
        f"~{plan['epoch_seconds']:.0f} s an epoch; lr annealed after epoch {plan['decay_start']})")


def register(subparsers, name: str, help: str) -> None:
    from pan.models import MODEL_NAMES
    from pan_kernels import BACKENDS

    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--full", action="store_true", help="the paper's schedule (30K/10K/10K, early stopping; a GPU run)")
    p.add_argument("--model", choices=MODEL_NAMES, default="pan-h-ctx")
    p.add_argument("--epochs", type=positive_int,
                   help="train exactly this many epochs (default: as many as fit --minutes on this machine)")
    p.add_argument("--minutes", type=positive_float, default=15.0,
                   help="wall-clock budget of the default demo, data and evaluation included (default 15)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds an earlier run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)
