"""`pan figure --dataset vg|voc07 --data-dir DIR --checkpoint RUN/best.pt`: attention panels of a Visual Genome
model on Visual Genome or VOC 2007 examples."""

from __future__ import annotations

import sys


def run(args) -> int:
    from pan.data.real_images import VisualGenomeImages, VOCImages
    from pan.data.visual_genome import VisualGenome
    from pan.data.voc import VOC2007
    from pan.train.checkpoint import CheckpointError
    from pan.train.real_images import load_real_model
    from pan.viz.real_images import real_attention_figure

    def fail(message: str) -> int:
        print(f"pan figure: error: {message}", file=sys.stderr)
        return 2

    if args.data_dir is None:
        return fail(f"--dataset {args.dataset} needs --data-dir DIR")
    device = "cpu" if args.device == "auto" else args.device
    try:
        model, cfg, vocab = load_real_model(args.checkpoint, backend=args.backend, device=device)
        if args.dataset == "vg":
            data = VisualGenomeImages(VisualGenome(args.data_dir, args.split, min_count=cfg.min_count, seed=cfg.seed),
                                      size=cfg.image_size)
        else:
            data = VOCImages(VOC2007(args.data_dir, args.split, query_names=vocab["classes"]), size=cfg.image_size)
        indices = args.examples if args.examples is not None else list(range(min(4, len(data))))
        if not indices or max(indices) >= len(data):
            return fail(f"--examples must lie in 0..{len(data) - 1} ({len(data)} examples in {args.split})")
        from pan.cli.outputs import make_parent

        path = real_attention_figure(model, data, indices, make_parent(args.out), query_names=vocab["classes"],
                                     attribute_names=vocab["attributes"], device=device,
                                     title=f"{cfg.model} on {args.dataset}/{args.split}")
    except (CheckpointError, ValueError) as err:
        return fail(str(err))
    print(f"wrote {path}")
    return 0
