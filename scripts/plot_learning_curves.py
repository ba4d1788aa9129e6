"""Draw learning curves of `pan train` runs: validation accuracy and TPR against training images seen.

Reads OUT/metrics.jsonl (validation accuracy on the run's whole validation split, every epoch) and, where present,
OUT/attention_curve.jsonl (accuracy and TPR on the first examples of the validation split, written by
scripts/attention_curve.py). ``--train`` adds each run's running training accuracy (the mean over the epoch's
steps, in training mode), dashed in the run's colour: the gap to the solid validation curve is the overfitting.
Optional horizontal lines mark reference values (e.g. the paper's). A run started with ``--init-from`` is drawn
from the images its starting checkpoint had seen.

    python scripts/plot_learning_curves.py RUN [RUN ...] --out curves.png [--label NAME ...] [--train] \
        [--acc-line 98.53:paper --tpr-line 62.36:paper]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pan.train.warm_start import images_behind, images_per_epoch


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def warm_start_images(config: dict, run: Path) -> int:
    """Training images behind a run's ``init_from`` checkpoint chain (`pan.train.warm_start.images_behind`); a
    checkpoint that cannot be found ends the count there, with a note on stderr."""
    images, missing = images_behind(config, run)
    if missing:
        print(f"note: {run}: its warm-start checkpoint {missing} is not here; {images} images counted before it",
              file=sys.stderr)
    return images


def run_curves(run: Path) -> dict:
    """{"acc": [(images, val %)], "train": [(images, running train %)], "tpr": [(images, %)]} of one run folder;
    a warm-started run's images count from the images behind its starting checkpoint."""
    config = json.loads((run / "config.json").read_text())
    per_epoch = images_per_epoch(config["num_train"], config["batch_size"])
    start = warm_start_images(config, run)
    metrics = read_jsonl(run / "metrics.jsonl")
    curve = read_jsonl(run / "attention_curve.jsonl")
    return {
        "acc": [(start + m["epoch"] * per_epoch, 100 * m["val_acc"]) for m in metrics],
        "train": [(start + m["epoch"] * per_epoch, 100 * m["train_acc"]) for m in metrics],
        "tpr": sorted((start + c["images_seen"], 100 * c["tpr"]) for c in curve),
    }


def _reference(text: str) -> tuple[float, str]:
    value, _, label = text.partition(":")
    return float(value), label or value


def plot(runs: list[Path], labels: list[str], out: Path, acc_lines=(), tpr_lines=(), train: bool = False) -> None:
    """Write the PNG of `figure` to ``out``."""
    fig = figure(runs, labels, acc_lines, tpr_lines, train)
    import matplotlib.pyplot as plt  # after `figure` chose the Agg backend
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def figure(runs: list[Path], labels: list[str], acc_lines=(), tpr_lines=(), train: bool = False):
    """Accuracy (left) and TPR (right) against training images, one colour per run on both, one legend beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_tpr) = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, label) in enumerate(zip(runs, labels)):
        c, colour = run_curves(run), colours[i % len(colours)]  # one colour per run on both plots
        if c["acc"]:
            ax_acc.plot(*zip(*c["acc"]), marker=".", color=colour, label=label)
            if train:
                ax_acc.plot(*zip(*c["train"]), linestyle="--", linewidth=1, color=colour,
                            label=f"{label} (train, running)")
        if c["tpr"]:
            ax_tpr.plot(*zip(*c["tpr"]), marker=".", color=colour, label=label if not c["acc"] else None)
    acc_name = "accuracy (%): validation" + (", train dashed" if train else "")
    for ax, lines, name in ((ax_acc, acc_lines, acc_name), (ax_tpr, tpr_lines, "TPR (%)")):
        for value, text in lines:
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
            ax.annotate(text, (0, value), xycoords=("axes fraction", "data"), xytext=(4, 3),
                        textcoords="offset points", fontsize=8, color="grey")
        ax.set_xlabel("training images seen")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    handles = [h for ax in (ax_acc, ax_tpr) for h in ax.get_lines() if not h.get_label().startswith("_")]
    fig.legend(handles=handles, fontsize=8, loc="outside right upper")  # beside the plots: never over a curve
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--label", action="append", default=None, help="one per run (default: the folder name)")
    p.add_argument("--acc-line", action="append", default=[], type=_reference, help="VALUE[:LABEL] on the acc plot")
    p.add_argument("--tpr-line", action="append", default=[], type=_reference, help="VALUE[:LABEL] on the TPR plot")
    p.add_argument("--train", action="store_true", help="also draw each run's running training accuracy, dashed")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    a = p.parse_args(argv)
    labels = a.label or [r.name for r in a.runs]
    if len(labels) != len(a.runs):
        p.error(f"--label: {len(labels)} labels for {len(a.runs)} runs")
    for run in a.runs:
        if not (run / "config.json").is_file():
            p.error(f"{run} is not a pan train run folder (no config.json)")
    if a.out.suffix.lower() != ".png":
        p.error(f"--out must name a .png file, got {a.out}")
    if a.out.exists() and not a.overwrite:
        p.error(f"--out {a.out} exists (add --overwrite to replace it)")
    plot(a.runs, labels, a.out, a.acc_line, a.tpr_line, train=a.train)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
