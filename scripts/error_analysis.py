"""What a trained MREF model gets wrong: the colour of another digit (it found the wrong digit) or a colour no digit
of the image has (it misread the colour), how the error rate grows with the digits in an image, and which digit it
took for the queried one.

    python scripts/error_analysis.py runs/NAME/best.pt [--split val] [--num-examples 10000] [--out errors.json]

For each wrong answer: ``wrong_digit`` if the predicted colour is that of some other digit of the same image
(``chance`` is how often that would happen if the wrong colour were drawn at random from the four others: near 1 it
would say little), ``confusions`` counts (queried digit, digit whose colour was answered) where exactly one other
digit has the predicted colour. Examples of an image that the split's end cuts off have fewer siblings; they count.
``blind_band``: the error rate by how much of the queried digit lies in the last rows and columns of the image, which
the reference CNN's last features never see (`pan.models.backbone.VISIBLE_EXTENT`). ``--data-file`` analyses the
examples of a ``pan data generate`` file instead of the checkpoint's generated split.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from pan.evaluation.report import add_out_argument, check_out, emit_report, load_checkpoint_model


def predictions(model, data, batch: int = 200) -> np.ndarray:
    """Answer index per example, ``[N]`` int64 (model in eval mode, fp32)."""
    from pan.evaluation.metrics import batch_images

    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = np.arange(start, min(start + batch, len(data)))
            images, _ = batch_images(data, idx, "cpu")
            out.append(model(images, torch.from_numpy(data.query[idx])).log_probs.argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def analyse(data, pred: np.ndarray) -> dict:
    """The error breakdown of ``pred`` (answer indices) on ``data`` (a pan.data.PanDataset)."""
    siblings: dict[int, list[int]] = {}
    for i, img in enumerate(data.image_index.tolist()):
        siblings.setdefault(img, []).append(i)
    wrong = np.flatnonzero(pred != data.answer)
    wrong_digit, chance, confusions = 0, 0.0, Counter()
    for i in wrong.tolist():
        others = [j for j in siblings[int(data.image_index[i])] if j != i]
        colours = {int(data.answer[j]) for j in others}
        wrong_digit += int(pred[i]) in colours
        chance += np.mean([c in colours for c in range(5) if c != data.answer[i]])
        taken = [int(data.query[j]) for j in others if data.answer[j] == pred[i]]
        if len(taken) == 1:
            confusions[f"{int(data.query[i])}->{taken[0]}"] += 1
    # digits per image from its instance map (ids 1..k): the last image of a split may keep fewer examples
    counts = data.instances.reshape(len(data.instances), -1).max(axis=1).astype(np.int64)[data.image_index]
    return {
        "num_examples": len(data), "accuracy": float(1 - len(wrong) / max(len(data), 1)), "errors": len(wrong),
        "wrong_digit": wrong_digit / max(len(wrong), 1), "chance": float(chance / max(len(wrong), 1)),
        "error_rate_by_digits_in_image": {int(k): float((pred != data.answer)[counts == k].mean())
                                          for k in np.unique(counts)},
        "confusions": dict(confusions.most_common(10)),
        "blind_band": blind_band(data, pred),
    }


def blind_band(data, pred: np.ndarray) -> dict:
    """Error rates by the share of the queried digit's mask in the band below / right of ``VISIBLE_EXTENT``."""
    from pan.evaluation.blind_band import target_band_share
    from pan.models.backbone import IMAGE_SIZE, VISIBLE_EXTENT

    share = target_band_share(data)
    wrong = pred != data.answer
    bins = {"0": share == 0, "(0, 0.1)": (share > 0) & (share < 0.1), "[0.1, 0.3)": (share >= 0.1) & (share < 0.3),
            "[0.3, 1]": share >= 0.3}

    def rate(sel: np.ndarray) -> float | None:
        return float(wrong[sel].mean()) if sel.any() else None

    return {"pixels": IMAGE_SIZE - VISIBLE_EXTENT, "share_of_examples": float((share > 0).mean()),
            "error_rate_in_band": rate(share > 0), "error_rate_outside": rate(share == 0),
            "share_of_errors": float((share[wrong] > 0).mean()) if wrong.any() else None,
            "by_share_of_the_digit": {k: {"examples": int(v.sum()), "error_rate": rate(v)} for k, v in bins.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument("--num-examples", type=int, default=10_000)
    p.add_argument("--cache-dir", default=None, help="dataset cache (default $PAN_CACHE_DIR or ~/.cache/pan/data)")
    p.add_argument("--data-file", type=Path, default=None,
                   help="a split file from `pan data generate` to analyse (all its examples) instead of --split")
    add_out_argument(p)
    a = p.parse_args(argv)
    check_out(p, a.out)
    if a.data_file is not None and not a.data_file.is_file():
        p.error(f"--data-file {a.data_file}: no such file")
    if a.num_examples < 1:
        p.error(f"--num-examples must be >= 1, got {a.num_examples}")
    from pan.data import DEFAULT_CACHE_DIR, PanDataset, make_dataset
    model, config = load_checkpoint_model(p, a.checkpoint)
    if a.data_file is not None:
        data = PanDataset.load(a.data_file)
        split = str(a.data_file)
    else:
        data = make_dataset(config.dataset, a.split, a.num_examples, seed=config.data_seed,
                            mnist_dir=config.mnist_dir, cache_dir=a.cache_dir or DEFAULT_CACHE_DIR)
        split = a.split
    result = {"checkpoint": str(a.checkpoint), "split": split, **analyse(data, predictions(model, data))}
    emit_report(result, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
