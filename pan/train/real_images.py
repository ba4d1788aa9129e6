"""Training the VGG-16 PAN on Visual Genome attributes (paper §4.2): Adam with one learning rate for the backbone and
another for the attention layers and head, lr x0.9 per epoch, the multi-label negative log-likelihood, validation
mAP each epoch. The loop is MREF's (`pan.train.loop.TrainingRun` with `pan.train.real_task.RealImageTask`): torchrun
DDP, bf16 autocast ("auto"), gradient clipping, channels-last, checkpoints at every epoch's end, every
``checkpoint_every`` minutes and on Ctrl-C / SIGTERM, exact resume mid-epoch, the divergence stop.

    summary = train_real_images(RealImageConfig(data_dir="~/data/vg", out="runs/vg-pan-h-ctx"))

Files in `out`: config.json, metrics.jsonl (one line per epoch), last.pt, best.pt (best validation weighted mAP),
summary.json. Checkpoints share pan.train.checkpoint's format with `config["kind"] == "real-images"`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch.utils.data import Subset

from pan.train.checkpoint import CheckpointError, ResumeError, load_checkpoint
from pan.train.config import check_checkpoint_every
from pan.train.precision import check_amp
from pan.train.real_task import RealImageParts, RealImageTask

REAL_DATASETS = ("vg",)
KIND = "real-images"


@dataclass
class RealImageConfig:
    """Settings of one Visual Genome run (`max_*` cap the examples, for smoke runs; 0 = all)."""

    data_dir: str = ""
    out: str = "runs/vg"
    dataset: str = "vg"
    model: str = "pan-h-ctx"
    prior: bool = False
    backbone_weights: str | None = None
    backbone: str = "vgg16"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    backbone_lr: float = 1e-5
    decay_factor: float = 0.9
    image_size: int = 224
    min_count: int = 100
    max_train: int = 0
    max_val: int = 0
    num_workers: int = 2
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    amp: bool | str = "auto"
    clip_norm: float | None = None
    channels_last: bool = False
    checkpoint_every: float = 10.0

    def validate(self) -> None:
        if self.dataset not in REAL_DATASETS:
            raise ValueError(f"dataset must be one of {REAL_DATASETS} to train on real images (voc07 has no attribute "
                             f"labels: evaluate a Visual Genome model on it with pan eval), got {self.dataset!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "backbone_lr", "decay_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or None, got {self.clip_norm!r}")
        check_amp(self.amp)
        check_checkpoint_every(self.checkpoint_every)

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> RealImageConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def load_splits(cfg: RealImageConfig):
    """(train, val) VisualGenome readers, and their torch Datasets capped at max_train / max_val examples."""
    from pan.data.real_images import VisualGenomeImages
    from pan.data.visual_genome import VisualGenome

    readers = [VisualGenome(cfg.data_dir, split, min_count=cfg.min_count, seed=cfg.seed) for split in ("train", "val")]
    datasets = []
    for reader, cap in zip(readers, (cfg.max_train, cfg.max_val)):
        if len(reader) == 0:
            raise ValueError(f"--data-dir {cfg.data_dir}: the {reader.split} split has no example (too few images, "
                             f"or no class / attribute seen more than {cfg.min_count} times)")
        data = VisualGenomeImages(reader, size=cfg.image_size)
        datasets.append(Subset(data, range(min(cap, len(data)))) if cap else data)
    return readers, datasets


def build_real_model(cfg: RealImageConfig, num_queries: int, num_classes: int, *, with_weights: bool = True):
    from pan.models.small_cnn import build_backbone_pan

    return build_backbone_pan(cfg.backbone, cfg.model, num_queries=num_queries, num_classes=num_classes,
                              prior=cfg.prior, weights=cfg.backbone_weights if with_weights else None,
                              backend=cfg.backend)


def build_optimizer(model, cfg: RealImageConfig) -> torch.optim.Adam:
    """Adam with two parameter groups: the backbone stages at backbone_lr, everything else at lr."""
    backbone = model.backbone_parameters()
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": backbone, "lr": cfg.backbone_lr, "name": "backbone"},
                             {"params": rest, "lr": cfg.lr, "name": "attention+head"}])


def multilabel_nll(log_p: torch.Tensor, log_1mp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_a [y_a log p_a + (1 - y_a) log(1 - p_a)], averaged over the batch."""
    return -(target * log_p.float() + (1 - target) * log_1mp.float()).sum(1).mean()


def train_real_images(cfg: RealImageConfig, *, resume: bool = False, progress: bool = True,
                      stop_after_steps: int | None = None) -> dict:
    """Train (or, with resume, continue from out/last.pt) with the engine of `pan.train.loop` and the task of
    `pan.train.real_task`; returns the summary written to out/summary.json: the engine's keys plus
    ``epochs_done``, ``best_weighted_map`` (None before a finished epoch), ``best_epoch`` and ``interrupted``
    ("interrupted" or None). Under torchrun every process calls this. ``stop_after_steps`` (a test hook) stops as
    if interrupted. Raises `pan.train.TrainingDiverged` at a non-finite loss or gradient norm."""
    from pan.train.distributed import setup_distributed, teardown_distributed
    from pan.train.divergence import TrainingDiverged
    from pan.train.loop import TrainingRun
    from pan.train.precision import resolve_amp

    cfg.validate()
    out = Path(cfg.out)
    if not resume and (out / "last.pt").is_file():
        raise ResumeError(f"{out} already holds a run (last.pt); continue it with --resume or choose another --out")
    dctx, device = setup_distributed(cfg.device)
    cfg = replace(cfg, amp=resolve_amp(cfg.amp, device))
    parts = RealImageParts(load_splits=load_splits, build_model=build_real_model, build_optimizer=build_optimizer,
                           loss=multilabel_nll)
    task = RealImageTask(cfg, parts, resume=resume, quiet=not progress, stop_after_steps=stop_after_steps)
    try:
        summary = TrainingRun(task, dctx, device).run()
    except TrainingDiverged:
        teardown_distributed(dctx)  # every rank stops at the same step
        raise
    summary.update(epochs_done=summary["epochs"], best_weighted_map=summary["best_val_acc"],
                   interrupted="interrupted" if summary["stopped"] == "interrupted" else None)
    if dctx.rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    teardown_distributed(dctx)
    return summary


def load_real_model(path: str | Path, *, backend: str = "auto", device: str | torch.device = "cpu"):
    """(model in eval mode, config, vocab) of a checkpoint written by train_real_images."""
    ckpt = load_checkpoint(path)
    if ckpt["config"].get("kind") != KIND or "vocab" not in ckpt:
        raise CheckpointError(f"{path} is not a Visual Genome (real-image) checkpoint")
    cfg = RealImageConfig.from_dict(ckpt["config"])
    cfg.backend = backend
    vocab = ckpt["vocab"]
    try:
        model = build_real_model(cfg, len(vocab["classes"]), len(vocab["attributes"]), with_weights=False)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit its model: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), cfg, vocab
