"""Learning curves with attention: accuracy and TPR of a training run's model after every epoch.

`pan train` logs validation accuracy per epoch (OUT/metrics.jsonl) but not TPR, which needs the attention maps in
image space. This watcher follows one or more run folders while they train: when an epoch ends (a new line in
metrics.jsonl and an OUT/last.pt at that epoch boundary), it evaluates that checkpoint's model on the first
``--num-examples`` examples of the run's validation split (`pan.evaluation.metrics.evaluate`: accuracy, TPR, accuracy
by scale) and appends one line to OUT/attention_curve.jsonl:

    {"epoch": E, "images_seen": E * num_train, "val_acc": ..., "tpr": ..., "accuracy_by_scale": {...},
     "num_examples": N, "seconds": ...}

An epoch whose checkpoint was already overwritten when the watcher looked (it was busy or stopped) is skipped, never
guessed. Run it at low priority beside the training:

    nice -n 19 python scripts/attention_curve.py runs/pan-h-ctx runs/pan-h-ctx-focus --num-examples 2000

It stops when every run has finished (a summary.json that does not say "interrupted": a run stopped by Ctrl-C or
SIGTERM may be resumed) and was evaluated, or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

CURVE_FILE = "attention_curve.jsonl"


def _epochs_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


def _epochs_done(run: Path) -> set[int]:
    path = run / CURVE_FILE
    if not path.is_file():
        return set()
    return {json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()}


def _boundary_epoch(ckpt: dict) -> int | None:
    """The epoch a checkpoint closes, or None for a mid-epoch checkpoint (its weights are between epochs)."""
    if ckpt.get("accum") is not None or ckpt["state"].get("step", 0) != 0:
        return None
    return int(ckpt["state"]["epoch"])


def evaluate_epoch(run: Path, num_examples: int, val_cache: dict, cache_dir: str | None = None) -> dict | None:
    """Evaluate OUT/last.pt if it closes an epoch not in the curve yet; the curve line, or None."""
    from pan.data import DEFAULT_CACHE_DIR, PanDataset, make_dataset
    from pan.evaluation.metrics import evaluate
    from pan.train.checkpoint import load_checkpoint, model_from_checkpoint
    from pan.train.warm_start import images_per_epoch

    ckpt = load_checkpoint(run / "last.pt")
    epoch = _boundary_epoch(ckpt)
    if epoch is None or epoch in _epochs_done(run):
        return None
    model, config = model_from_checkpoint(ckpt, run / "last.pt", backend="torch")
    key = config.val_file or (config.dataset, config.num_val, config.data_seed, config.mnist_dir)
    if key not in val_cache:  # the run's own validation examples: its --val-file, else the generated split
        val_cache[key] = PanDataset.load(config.val_file) if config.val_file else make_dataset(
            config.dataset, "val", config.num_val, seed=config.data_seed, mnist_dir=config.mnist_dir,
            cache_dir=cache_dir or DEFAULT_CACHE_DIR)
    t0 = time.perf_counter()
    with torch.no_grad():
        result = evaluate(model, val_cache[key], limit=num_examples)
    line = {"epoch": epoch, "images_seen": epoch * images_per_epoch(config.num_train, config.batch_size),
            "val_acc": result["accuracy"], "tpr": result["tpr"], "accuracy_by_scale": result["accuracy_by_scale"],
            "num_examples": result["num_examples"], "seconds": round(time.perf_counter() - t0, 1)}
    with open(run / CURVE_FILE, "a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def _finished(run: Path) -> bool:
    """The run ended for good (early stopping, its last epoch, divergence), not interrupted to be resumed."""
    path = run / "summary.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("stopped") != "interrupted"
    except (json.JSONDecodeError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders of pan train (OUT)")
    p.add_argument("--num-examples", type=int, default=2000, help="validation examples per evaluation")
    p.add_argument("--poll", type=float, default=20.0, help="seconds between looks at the runs")
    p.add_argument("--once", action="store_true", help="evaluate what is there now and exit")
    p.add_argument("--cache-dir", default=None, help="dataset cache (default $PAN_CACHE_DIR or ~/.cache/pan/data)")
    a = p.parse_args(argv)
    if a.num_examples < 1:
        p.error(f"--num-examples must be >= 1, got {a.num_examples}")
    for run in a.runs:
        if not run.is_dir():
            p.error(f"run folder {run} does not exist")
    val_cache: dict = {}
    try:
        while True:
            for run in a.runs:
                if (run / "last.pt").is_file() and set(_epochs_logged(run)) - _epochs_done(run):
                    line = evaluate_epoch(run, a.num_examples, val_cache, a.cache_dir)
                    if line is not None:
                        print(f"{run}: epoch {line['epoch']} val acc {100 * line['val_acc']:.2f}% "
                              f"TPR {100 * line['tpr']:.2f}% ({line['seconds']} s)", flush=True)
            finished = all(_finished(run) for run in a.runs)
            if a.once or finished:
                return 0
            time.sleep(a.poll)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
