"""The Visual Genome attributes task of the training engine (paper §4.2): a multi-label NLL over the attributes of
(image, object class) examples, validation weighted mAP (model selection) with mAP and attention TPR, Adam with one
lr for the backbone and another for the attention layers and head, lr x ``decay_factor`` per epoch.

Images are read and resized by ``num_workers`` DataLoader processes; the engine decides which examples each step and
each torchrun process trains on, the loader only reads them (in that order)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from pan.train.task import EngineSettings, Task

__all__ = ["RealImageParts", "RealImageTask", "RESUME_EXEMPT"]

#: RealImageConfig fields a resumed run may change (they do not change what is trained).
RESUME_EXEMPT = ("epochs", "checkpoint_every", "num_workers")


@dataclass
class RealImageParts:
    """What the task calls in `pan.train.real_images` (handed in by it: this module does not import that one):
    ``load_splits(cfg) -> ((train reader, val reader), (train dataset, val dataset))``,
    ``build_model(cfg, num_queries, num_classes, with_weights=...)``, ``build_optimizer(model, cfg)`` and
    ``loss(log_p, log_1mp, target) -> mean multi-label NLL``."""

    load_splits: Callable
    build_model: Callable
    build_optimizer: Callable
    loss: Callable


class RealImageTask(Task):
    """Training sums per step: ``[loss x local batch, local batch, gradient norm]`` (float64)."""

    accum_size = 3

    def __init__(self, cfg: Any, parts: RealImageParts, *, resume: bool = False, quiet: bool = False,
                 stop_after_steps: int | None = None):
        self.cfg, self.parts = cfg, parts
        self.resume = resume
        self.settings = EngineSettings(
            out_dir=cfg.out, seed=cfg.seed, batch_size=cfg.batch_size, max_epochs=cfg.epochs, clip_norm=cfg.clip_norm,
            amp=cfg.amp, channels_last=cfg.channels_last, quiet=quiet, log_every=5,
            stop_after_steps=stop_after_steps, checkpoint_every=cfg.checkpoint_every, resume=resume)
        self.vocab: dict = {}

    def config_dict(self) -> dict:
        return self.cfg.to_dict()

    def resume_mismatches(self, saved: dict) -> list[str]:
        now = self.cfg.to_dict()
        return [f"{k}: {saved.get(k)!r} (checkpoint) != {now[k]!r} (now)" for k in sorted(set(saved) | set(now))
                if k not in RESUME_EXEMPT and saved.get(k) != now.get(k)]

    def prepare(self, device: torch.device) -> int:
        from pan.train.distributed import rank_zero_first

        self.device = device
        (train_reader, _), (self.train_data, self.val_data) = rank_zero_first(lambda: self.parts.load_splits(self.cfg))
        self.vocab = {"classes": train_reader.classes, "attributes": train_reader.attributes}
        return len(self.train_data)

    def build_model(self) -> nn.Module:
        return self.parts.build_model(self.cfg, len(self.vocab["classes"]), len(self.vocab["attributes"]),
                                with_weights=not self.resume)

    def build_optimizer(self, model: nn.Module, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return self.parts.build_optimizer(model, self.cfg)

    def set_lr(self, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        factor = self.cfg.decay_factor ** (epoch - 1)
        for group, base in zip(optimizer.param_groups, (self.cfg.backbone_lr, self.cfg.lr)):
            group["lr"] = base * factor
        return self.cfg.lr * factor

    def batches(self, epoch: int, indices: Iterator[torch.Tensor]) -> Iterator[Any]:
        steps = [idx.tolist() for idx in indices]
        # a generator of its own: the loader never draws from (and so never shifts) the global RNG a checkpoint saves
        loader = DataLoader(self.train_data, batch_sampler=steps, num_workers=self.cfg.num_workers,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch))
        layout = torch.channels_last if self.cfg.channels_last else torch.contiguous_format
        for images, query, target, _ in loader:
            yield (images.to(self.device, non_blocking=True).contiguous(memory_format=layout),
                   query.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True))

    def train_step(self, model, optimizer, batch, epoch: int, local_batch: int):
        images, query, target = batch
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp):
            out = model(images, query)
        loss = self.parts.loss(out.log_p, out.log_1mp, target)
        loss.backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        clip = float("inf") if self.cfg.clip_norm is None else self.cfg.clip_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        n = torch.tensor(float(local_batch), dtype=torch.float64, device=loss.device)
        return torch.stack([loss.detach().double() * local_batch, n, grad_norm.detach().double()]), loss, grad_norm

    def postfix(self, sums: list[float]) -> dict:
        return {"loss": f"{sums[0] / sums[1]:.4f}"}

    def validate(self, model: nn.Module, rank: int, world: int, all_sum) -> tuple[float, dict]:
        """Every rank evaluates the whole validation set (AP needs all scores at once; same result everywhere)."""
        from pan.evaluation.real_images import evaluate_multilabel

        val = evaluate_multilabel(model, self.val_data, batch_size=self.cfg.batch_size, device=self.device,
                                  amp=self.cfg.amp, num_workers=self.cfg.num_workers)
        return val["weighted_map"], {"val_weighted_map": val["weighted_map"], "val_map": val["map"],
                                     "val_tpr": val["tpr"]}

    def epoch_line(self, *, epoch, global_step, lr, train, steps, world, val, best_score, best_epoch, seconds,
                   images_per_s) -> dict:
        return {"epoch": epoch, "step": global_step, "lr": lr, "train_loss": train[0] / train[1],
                "grad_norm": train[2] / (steps * world), **val, "best_val_weighted_map": best_score,
                "best_epoch": best_epoch, "seconds": seconds, "images_per_s": images_per_s}

    def epoch_message(self, m: dict, improved: bool) -> str:
        return (f"epoch {m['epoch']}: loss {m['train_loss']:.4f}  val mAP (weighted) "
                f"{100 * m['val_weighted_map']:.2f}%{' *' if improved else '  '}  TPR {100 * m['val_tpr']:.2f}%  "
                f"{m['seconds']:.1f}s  {m['images_per_s']:.0f} img/s")

    def checkpoint_extras(self) -> dict:
        return {"vocab": self.vocab}

    def summary_fields(self) -> dict:
        c = self.cfg
        return {"model": c.model, "dataset": c.dataset, "lr": c.lr, "seed": c.seed}
