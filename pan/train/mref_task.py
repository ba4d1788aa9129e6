"""The MREF / MDIST / MBG task of the training engine (docs/design.md, Training): one answer out of 5 per (image,
query), the NLL of the answer (+ the optional gate term), validation accuracy, RMSprop / Adam with the step lr
schedule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from pan.train.augment import random_shift
from pan.train.config import TrainConfig
from pan.train.data import ResidentData
from pan.train.optim import build_optimizer
from pan.train.regularizers import per_gate_weights
from pan.train.run_state import fmt
from pan.train.schedule import lr_at_epoch
from pan.train.step import evaluate_sums, train_step
from pan.train.task import Task
from pan.train.warm_start import load_init_weights

__all__ = ["MrefTask"]

_FULLGRAPH_MODELS = ("san", "han", "pan-s", "pan-h", "pan-s-ctx", "pan-h-ctx")


class MrefTask(Task):
    """Training sums per step: ``[loss x local batch, correct, local batch, gradient norm]`` (float64)."""

    accum_size = 4

    def __init__(self, config: TrainConfig, train_data: Any, val_data: Any):
        self.config = self.settings = config
        self.fullgraph = config.model in _FULLGRAPH_MODELS
        self._train_raw, self._val_raw = train_data, val_data
        self.num_gates = 0

    def config_dict(self) -> dict:
        return self.config.to_dict()

    def resume_mismatches(self, saved: dict) -> list[str]:
        return self.config.resume_mismatches(saved)

    def prepare(self, device: torch.device) -> int:
        c = self.config
        self.train_data = ResidentData(self._train_raw, device, channels_last=c.channels_last)
        self.val_data = ResidentData(self._val_raw, device, channels_last=c.channels_last)
        self.eval_batch = c.eval_batch_size or c.batch_size
        return len(self.train_data)

    def build_model(self) -> nn.Module:
        from pan.models import build_model

        model = build_model(self.config.model, backend=self.config.backend, **self.config.model_kwargs())
        # PAN's sigmoid gates lead model(...).attention; SAN, HAN, the STNs and Uniform have none (the term is 0)
        self.num_gates = len(getattr(model, "gates", ()))
        per_gate_weights(self.config.gate_sparsity, self.num_gates)  # a per-gate list must match the model's gates
        return model

    def initialise(self, model: nn.Module) -> None:
        c = self.config
        if c.init_from is not None:
            load_init_weights(model, c.init_from, c.model, c.head_dropout)

    def build_optimizer(self, model: nn.Module, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return build_optimizer(self.config, params)

    def set_lr(self, optimizer: torch.optim.Optimizer, epoch: int) -> float:
        c = self.config
        lr = lr_at_epoch(epoch, c.lr, c.decay_start, c.decay_every, c.decay_factor)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def index_device(self) -> torch.device:
        return self.train_data.storage

    def batches(self, epoch: int, indices: Iterator[torch.Tensor]) -> Iterator[Any]:
        for idx in indices:
            yield self.train_data.gather(idx)

    def train_step(self, model, optimizer, batch, epoch: int, local_batch: int):
        c = self.config
        images, query, answer = batch
        if c.augment_shift:
            images = random_shift(images, c.augment_shift)
        sparsity = c.gate_sparsity if epoch > c.gate_sparsity_start else 0.0
        loss, correct, grad_norm = train_step(model, optimizer, images, query, answer, clip_norm=c.clip_norm,
                                              amp=c.amp, gate_sparsity=sparsity, num_gates=self.num_gates,
                                              gate_kind=c.gate_sparsity_kind)
        count = torch.tensor(float(local_batch), dtype=torch.float64, device=loss.device)
        sums = torch.stack([loss.double() * local_batch, correct.double(), count, grad_norm.double()])
        return sums, loss, grad_norm

    def _sums(self, model: nn.Module, data: ResidentData, rank: int, world: int, all_sum) -> list[float]:
        return all_sum(evaluate_sums(model, data, self.eval_batch, amp=self.config.amp, rank=rank,
                                     world=world)).tolist()

    def validate(self, model: nn.Module, rank: int, world: int, all_sum) -> tuple[float, dict]:
        va = self._sums(model, self.val_data, rank, world, all_sum)
        return va[1] / va[2], {"val_loss": va[0] / va[2], "val_acc": va[1] / va[2]}

    def postfix(self, sums: list[float]) -> dict:
        return {"loss": f"{sums[0] / sums[2]:.4f}", "acc": f"{100 * sums[1] / sums[2]:.1f}%"}

    def epoch_line(self, *, epoch, global_step, lr, train, steps, world, val, best_score, best_epoch, seconds,
                   images_per_s) -> dict:
        return {"epoch": epoch, "step": global_step, "lr": lr, "train_loss": train[0] / train[2],
                "train_acc": train[1] / train[2], "grad_norm": train[3] / (steps * world),
                "val_loss": val["val_loss"], "val_acc": val["val_acc"], "best_val_acc": best_score,
                "best_epoch": best_epoch, "seconds": seconds, "images_per_s": images_per_s}

    def epoch_message(self, m: dict, improved: bool) -> str:
        return (f"epoch {m['epoch']:4d}  train loss {fmt(m['train_loss'])} acc {fmt(m['train_acc'], True)}  "
                f"val loss {fmt(m['val_loss'])} acc {fmt(m['val_acc'], True)}{' *' if improved else '  '}  "
                f"lr {m['lr']:.3g}  {m['seconds']:.1f}s  {m['images_per_s']:.0f} img/s")

    def summary_fields(self) -> dict:
        c = self.config
        return {"model": c.model, "dataset": c.dataset, "lr": c.lr, "seed": c.seed}

    def evaluate_only(self, model, rank, world, all_sum):
        import time

        t0 = time.perf_counter()
        tr = self._sums(model, self.train_data, rank, world, all_sum)
        va = self._sums(model, self.val_data, rank, world, all_sum)
        acc, loss = va[1] / va[2], va[0] / va[2]
        seconds = time.perf_counter() - t0
        line = {"epoch": 0, "step": 0, "lr": None, "train_loss": tr[0] / tr[2], "train_acc": tr[1] / tr[2],
                "grad_norm": None, "val_loss": loss, "val_acc": acc, "best_val_acc": acc, "best_epoch": 0,
                "seconds": seconds, "images_per_s": (tr[2] + va[2]) / max(seconds, 1e-9)}
        message = (f"{self.config.model}: no parameters to train; train acc {fmt(tr[1] / tr[2], True)}, "
                   f"val acc {fmt(acc, True)}")
        return line, acc, loss, message
