"""`pan eval --dataset vg|voc07 --data-dir DIR --checkpoint RUN/best.pt`: attribute mAP and attention TPR of a
Visual Genome model on its test split, or its attention TPR on VOC 2007 segmentation (paper §4.2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(args) -> int:
    from pan.data.real_images import VisualGenomeImages, VOCImages
    from pan.data.visual_genome import VisualGenome
    from pan.data.voc import VOC2007
    from pan.evaluation.real_images import evaluate_multilabel, evaluate_voc_tpr
    from pan.train.checkpoint import CheckpointError
    from pan.train.real_images import load_real_model

    def fail(message: str) -> int:
        print(f"pan eval: error: {message}", file=sys.stderr)
        return 2

    if args.checkpoint is None or args.data_dir is None:
        return fail(f"--dataset {args.dataset} needs --checkpoint RUN/best.pt and --data-dir DIR")
    from pan.cli.outputs import OutputError, check_file

    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.dataset}_{args.split}.json"
    try:
        check_file(out, "--out", overwrite=args.overwrite, suffix=".json")
    except OutputError as err:
        return fail(str(err))
    device = args.device if args.device != "auto" else ("cuda" if _cuda() else "cpu")
    try:
        model, cfg, vocab = load_real_model(args.checkpoint, backend=args.backend, device=device)
        if args.dataset == "vg":
            reader = VisualGenome(args.data_dir, args.split, min_count=cfg.min_count, seed=cfg.seed)
            if reader.classes != vocab["classes"] or reader.attributes != vocab["attributes"]:
                return fail(f"--data-dir {args.data_dir}: its vocabularies differ from the ones {args.checkpoint} was "
                            "trained with")
            data = VisualGenomeImages(reader, size=cfg.image_size)
            result = evaluate_multilabel(model, data, batch_size=args.batch_size, device=device)
            print(f"{cfg.model} on vg/{args.split} ({result['count']} examples): weighted mAP "
                  f"{100 * result['weighted_map']:.2f}%  mAP {100 * result['map']:.2f}% ({result['scored']} "
                  f"attributes)  TPR {100 * result['tpr']:.2f}%")
        else:
            voc = VOC2007(args.data_dir, args.split, query_names=vocab["classes"])
            if len(voc) == 0:
                return fail(f"--data-dir {args.data_dir}: no VOC object class matches the model's query classes")
            result = evaluate_voc_tpr(model, VOCImages(voc, size=cfg.image_size), batch_size=args.batch_size,
                                      device=device)
            result["unmatched_classes"] = voc.unmatched
            print(f"{cfg.model} on voc07/{args.split} ({result['count']} examples): TPR {100 * result['tpr']:.2f}%"
                  + (f" (VOC classes without a query: {', '.join(voc.unmatched)})" if voc.unmatched else ""))
    except (CheckpointError, ValueError) as err:
        return fail(str(err))
    out.write_text(json.dumps({"model": cfg.model, "dataset": args.dataset, "split": args.split, **result}, indent=2))
    print(f"wrote {out}")
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
