"""`pan demo`: the main job on embedded defaults — generate MREF, train PAN[H]+CTX, report accuracy and TPR against
the baselines that would fool you (uniform attention, the query-blind answer), draw the attention of a few test
examples. Default: the `demo` recipe (the `cpu` recipe plus the focus term on the gates) for as many epochs as fit
`--minutes` (15) on this machine; `--full`: the paper's recipe (a GPU run); `--pretrained [CHECKPOINT]`: no training,
the same report and figure for the checkpoint shipped with the package (`pan.assets`: PAN[H]+CTX trained to
convergence, with the focus term) or for a checkpoint of your own."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pan.cli.argtypes import backend_problem, device_name, non_negative_int, positive_float, positive_int
from pan.cli.outputs import OutputError, check_run_dir, clear_run

# preset: (training recipe of pan.train.recipes, test examples)
PRESETS = {"cpu": ("demo", 1_000), "full": ("paper", 10_000)}
# what fitting the cpu preset to --minutes sets
_FITTED_FIELDS = ("max_epochs", "patience", "decay_start")
_SHIPPED = "shipped"
# the options that only make sense when the demo trains
_TRAINING_OPTIONS = ("full", "epochs", "minutes", "resume")
_DEFAULT_MINUTES = 15.0
_DEFAULT_OUT = {"train": "runs/demo", "pretrained": "runs/demo-pretrained"}


def _fail(message: str) -> int:
    print(f"pan demo: error: {message}", file=sys.stderr)
    return 2


def _usage_problem(args) -> str | None:
    """A one-line message for options that contradict each other or cannot run here, else None."""
    import torch

    problem = backend_problem(args.backend, args.device)
    if problem is not None:
        return f"--backend {args.backend} cannot run on --device {args.device}: {problem}"
    if args.pretrained is not None:
        given = [f"--{name}" for name in _TRAINING_OPTIONS if getattr(args, name)]
        return f"--pretrained does not train; drop {', '.join(given)}" if given else None
    if args.epochs and args.minutes:
        return "--epochs trains exactly that many epochs and --minutes fits the epochs to a time budget: give one"
    if args.full and args.minutes:
        return "--full runs the paper's schedule to early stopping; --minutes does not apply to it"
    if args.full and args.device == "auto" and not torch.cuda.is_available():
        return ("--full is the paper's schedule (up to 1000 epochs of 30000 examples), a GPU run, and this machine "
                "has no GPU: drop --full for the timed CPU demo, or add --device cpu to run it here anyway")
    return None


def _prepare_out(args) -> int:
    """Check --out (default per mode), clear it on --overwrite; 0, or 2 after printing why not."""
    args.out = args.out or _DEFAULT_OUT["pretrained" if args.pretrained is not None else "train"]
    if args.resume and not (Path(args.out) / "last.pt").is_file():
        return _fail(f"--resume: no interrupted demo in --out {args.out} (no last.pt there)")
    try:
        check_run_dir(args.out, "--out", overwrite=args.overwrite, resume=args.resume)
    except OutputError as err:
        return _fail(str(err))
    if args.overwrite and not args.resume:
        clear_run(args.out)
    return 0


def run(args) -> int:
    problem = _usage_problem(args)
    if problem is not None:
        return _fail(problem)
    if args.pretrained is not None:
        return _run_pretrained(args)
    from pan.train import CheckpointError, ResumeError, TrainConfig, TrainingDiverged, train
    from pan.train.recipes import recipe_settings

    if _prepare_out(args):
        return 2
    args.model = args.model or "pan-h-ctx"
    args.minutes = args.minutes or _DEFAULT_MINUTES
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
        return _fail(str(err).replace("\n", " "))
    except TrainingDiverged as err:
        print(f"pan demo: error: {err}", file=sys.stderr)
        return 1
    if summary["stopped"] == "interrupted":
        print(f"interrupted; continue with: pan demo --resume --out {out}", file=sys.stderr)
        return 130
    report = _evaluate_and_draw(args, summary["checkpoint"], n_test)
    report.update({"best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "preset": preset,
                   "recipe": recipe, "minutes_budget": None if args.epochs or args.full else args.minutes,
                   "images_per_s": (summary["last_epoch_metrics"] or {}).get("images_per_s")})
    seconds = _finish(args, report, start)
    precision = "bf16 autocast" if report["amp"] else "fp32"
    print(f"best epoch {summary['best_epoch']} of {summary['epochs']} ({precision}), {seconds:.0f} s in all")
    print(f"wrote {out / 'attention.png'}, {report['eval_file']}, {out / 'demo.json'}")
    return 0


def _run_pretrained(args) -> int:
    """Evaluate and draw a trained checkpoint (default: the shipped one) without training."""
    from pan.assets import DEMO_CHECKPOINT
    from pan.train import CheckpointError, load_checkpoint
    from pan.train.recipes import matching_recipe

    path = DEMO_CHECKPOINT if args.pretrained == _SHIPPED else Path(args.pretrained)
    start = time.time()
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        return _fail(f"--pretrained: {err}")
    config = ckpt["config"]
    if config.get("dataset") != "mref":
        return _fail(f"--pretrained {path} was trained on {config.get('dataset')!r}; the demo evaluates on MREF")
    if args.model is not None and args.model != config.get("model"):
        return _fail(f"--model {args.model} but --pretrained {path} holds a {config.get('model')} model")
    if _prepare_out(args):
        return 2
    args.model = config["model"]
    state = ckpt.get("state") or {}
    recipe = matching_recipe(config) or config.get("recipe")
    images, behind, missing = _images_trained(ckpt, path)
    warm = "" if not config.get("init_from") else f" after a warm start from {behind:,} images" if missing is None \
        else f" after a warm start from {missing} (not found: the images before it are not counted)"
    print(f"pan demo: {args.model} from {path} (recipe {recipe}, {state.get('epoch')} epochs of "
          f"{config.get('num_train')} examples{warm}, {images:,} training images; not trained here), "
          f"{PRESETS['cpu'][1]} MREF test examples", flush=True)
    try:
        report = _evaluate_and_draw(args, path, PRESETS["cpu"][1])
    except CheckpointError as err:
        return _fail(str(err))
    report.update({"pretrained": str(path), "recipe": recipe, "epochs": state.get("epoch"),
                   "images_trained": images, "provenance": ckpt.get("provenance")})
    seconds = _finish(args, report, start)
    print(f"{seconds:.0f} s; wrote {Path(args.out) / 'attention.png'}, {report['eval_file']}, "
          f"{Path(args.out) / 'demo.json'}")
    return 0


def _images_trained(ckpt: dict, path: Path) -> tuple[int, int, str | None]:
    """(training images behind ``ckpt`` in all, those before its warm start, a warm-start checkpoint that cannot be
    found or None): a shipped file's provenance says (its chain is not on disk), else the chain is followed from the
    checkpoint's folder (`pan.train.warm_start.images_behind`)."""
    from pan.train.warm_start import images_behind, images_per_epoch

    provenance = ckpt.get("provenance") or {}
    if "images_trained" in provenance:
        return provenance["images_trained"], provenance["images_before_warm_start"], None
    config = ckpt["config"]
    behind, missing = images_behind(config, path.parent)
    own = ((ckpt.get("state") or {}).get("epoch") or 0) * images_per_epoch(config["num_train"], config["batch_size"])
    return own + behind, behind, missing


def _evaluate_and_draw(args, checkpoint, n_test: int) -> dict:
    """Test accuracy / TPR of ``checkpoint`` beside both baselines, and the attention figure in ``args.out``."""
    import torch

    from pan.data import make_dataset
    from pan.evaluation.baselines import query_blind_accuracy, uniform_tpr
    from pan.evaluation.run import evaluate_run
    from pan.provenance import make_header
    from pan.train import load_model
    from pan.viz import attention_figure, distinct_image_examples

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate_run(checkpoint=str(checkpoint), split="test", num_examples=n_test, backend=args.backend,
                          device=args.device, out=str(out / "eval_mref_test.json"))
    model, config = load_model(checkpoint, backend=args.backend, device=result["device"])
    test = make_dataset("mref", "test", n_test, seed=config.data_seed)
    attention_figure(model, test, distinct_image_examples(test, 6), out / "attention.png", device=result["device"],
                     title=f"{args.model} on MREF test")
    return {"header": make_header(torch.device(result["device"])), "model": args.model,
            "accuracy": result["accuracy"], "tpr": result["tpr"], "query_blind_accuracy": query_blind_accuracy(test),
            "uniform_tpr": uniform_tpr(test), "accuracy_by_scale": result["accuracy_by_scale"],
            "device": result["device"], "backend": args.backend, "amp": config.amp, "eval_file": result["out"]}


def _finish(args, report: dict, start: float) -> float:
    """Write demo.json and print the two numbers against their baselines; the seconds since ``start``."""
    seconds = time.time() - start
    report["wall_seconds"] = round(seconds, 1)
    (Path(args.out) / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    acc, blind = 100 * report["accuracy"], 100 * report["query_blind_accuracy"]
    print(f"test accuracy {acc:.2f}%   (query-blind answer: {blind:.2f}%, chance 20%)")
    print(f"test TPR      {100 * report['tpr']:.2f}%   (uniform attention: {100 * report['uniform_tpr']:.2f}%)")
    return seconds


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
    p.add_argument("--model", choices=MODEL_NAMES, default=None, help="default pan-h-ctx")
    p.add_argument("--epochs", type=positive_int,
                   help="train exactly this many epochs (default: as many as fit --minutes on this machine)")
    p.add_argument("--minutes", type=positive_float, default=None,
                   help="wall-clock budget of the default demo, data and evaluation included (default 15)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", type=device_name, default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", default=None,
                   help=f"output directory (default {_DEFAULT_OUT['train']}; with --pretrained "
                        f"{_DEFAULT_OUT['pretrained']})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the earlier run in --out (every file of it goes) instead of refusing")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--pretrained", nargs="?", const=_SHIPPED, default=None, metavar="CHECKPOINT",
                   help="skip training: evaluate and draw the checkpoint shipped with pan (PAN[H]+CTX trained to "
                        "convergence with the focus term; docs/results.md), or CHECKPOINT")
    p.set_defaults(func=run)
