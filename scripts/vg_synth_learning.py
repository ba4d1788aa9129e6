"""Check that the multi-label PAN learns, on vg-synth, in CPU minutes: generate the set, train PAN[H] on the small
CNN (pan train --dataset vg --backbone small-cnn --model pan-h), then on the test split compare its weighted mAP and TPR
with the attribute prior, uniform attention and the model asked about another object of the same image
(pan.evaluation.query_check); write the numbers (with pan.provenance's header) and an attention figure.

    python scripts/vg_synth_learning.py --work /tmp/vg-synth-run --images 600 --epochs 12 --batch-size 16 \
        --lr 1e-3 --decay 1.0 \
        --out benchmarks/results/cpu_2026-12-05_vg-synth-learning.json --figure docs/vg-synth-attention.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/vg-synth-run", help="data and run folder (replaced)")
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--decay", type=float, default=1.0, help="lr factor per epoch")
    p.add_argument("--classes", type=int, default=None, help="object classes (default: all 5 shapes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: a loaded machine wastes 2 spinning)")
    p.add_argument("--model", default="pan-h", choices=("pan-h", "pan-s", "pan-h-ctx", "pan-s-ctx", "han", "san"))
    p.add_argument("--background", default="photo", choices=("photo", "plain"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--figure", default=None, help="attention figure (PNG)")
    args = p.parse_args()

    import torch

    from pan.data.real_images import VisualGenomeImages
    from pan.data.vg_synth import write_vg_synth
    from pan.data.visual_genome import VisualGenome
    from pan.evaluation.query_check import query_check
    from pan.provenance import make_header
    from pan.train.real_images import RealImageConfig, load_real_model, train_real_images

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    write_vg_synth(work / "data", args.images, seed=args.seed, image_size=args.image_size, background=args.background,
                   num_classes=args.classes)
    generated = time.perf_counter()
    cfg = RealImageConfig(data_dir=str(work / "data"), out=str(work / "run"), backbone="small-cnn", model=args.model,
                          epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, backbone_lr=args.lr,
                          decay_factor=args.decay, image_size=args.image_size, min_count=10, num_workers=0,
                          seed=args.seed, backend="torch", device="cpu")
    summary = train_real_images(cfg)
    trained = time.perf_counter()
    model, _, _ = load_real_model(work / "run" / "best.pt", backend="torch")
    train = VisualGenome(cfg.data_dir, "train", min_count=10, seed=args.seed, cache_dir=None)
    test = VisualGenome(cfg.data_dir, "test", min_count=10, seed=args.seed, cache_dir=None)
    report = query_check(model, train, test, image_size=args.image_size)
    done = time.perf_counter()
    metrics = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    result = {"header": make_header(torch.device("cpu")), "settings": vars(args), "train_examples": len(train),
              "test": report, "summary": summary, "epochs": metrics,
              "minutes": {"generate": round((generated - start) / 60, 2), "train": round((trained - generated) / 60, 2),
                          "evaluate": round((done - trained) / 60, 2)}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {out}")
    if args.figure:
        from pan.viz.real_images import real_attention_figure

        data = VisualGenomeImages(test, size=args.image_size)
        picks = [0, 1, 2, 3, 4, 5]
        path = real_attention_figure(model, data, picks, args.figure, query_names=test.classes,
                                     attribute_names=test.attributes,
                                     title=f"vg-synth test: {args.model} on the small CNN ({args.epochs} epochs)")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
