"""One training run (docs/design.md, Training) as an object: set-up (data, model, optimizer, resume), the epoch loop,
validation, early stopping, checkpoints; DDP-aware. `pan.train.train` is the public entry point."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pan.train.checkpoint import CHECKPOINT_FORMAT, ResumeError, atomic_torch_save, load_checkpoint
from pan.train.config import TrainConfig
from pan.train.data import ResidentData, epoch_permutation
from pan.train.distributed import Dist
from pan.train.interrupt import StopRequest
from pan.train.optim import build_optimizer
from pan.train.regularizers import per_gate_weights
from pan.train.run_state import MetricsLog, RunState, fmt, rng_state, set_rng_state
from pan.train.schedule import lr_at_epoch
from pan.train.step import evaluate_sums, param_digest, train_step

__all__ = ["TrainingRun", "TIMING_FIELDS"]

#: Fields of a metrics line that measure time (they differ between an interrupted-and-resumed and a straight run).
TIMING_FIELDS = ("seconds", "images_per_s")
_FULLGRAPH_MODELS = ("san", "han", "pan-s", "pan-h", "pan-s-ctx", "pan-h-ctx")


class TrainingRun:
    def __init__(self, config: TrainConfig, dctx: Dist, device: torch.device, train_data: Any, val_data: Any):
        from pan.models import build_model

        self.config, self.dist, self.device = config, dctx, device
        self.is_main = dctx.rank == 0
        self.out_dir = Path(config.out_dir)
        self.last_path, self.best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        ckpt = self._checkpoint_to_resume()

        if config.batch_size % dctx.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                             f"({dctx.world})")
        self.train_data = ResidentData(train_data, device, channels_last=config.channels_last)
        self.val_data = ResidentData(val_data, device, channels_last=config.channels_last)
        self.steps_per_epoch = len(self.train_data) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {config.batch_size} is larger than the training set "
                             f"({len(self.train_data)} examples)")
        self.local_batch = config.batch_size // dctx.world
        self.eval_batch = config.eval_batch_size or config.batch_size

        if device.type == "cuda":
            torch.backends.cudnn.deterministic = config.deterministic
            torch.backends.cudnn.benchmark = not config.deterministic
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, backend=config.backend).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # PAN's sigmoid gates lead model(...).attention; SAN, HAN, the STNs and Uniform have none (the term is 0)
        self.num_gates = len(getattr(self.model, "gates", ()))
        per_gate_weights(config.gate_sparsity, self.num_gates)  # a per-gate list must match the model's gates
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, self.params) if self.params else None
        self.state = RunState()
        self.accum_saved: torch.Tensor | None = None
        self.accum_world = 1
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            if self.optimizer is not None and ckpt["optimizer"] is not None:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            self.state = RunState(**ckpt["state"])
            self.accum_saved, self.accum_world = ckpt["accum"], ckpt["world_size"]
            set_rng_state(ckpt["rng"])
        elif self.last_path.exists() and not config.overwrite:
            raise ResumeError(f"{self.out_dir} already holds a run ({self.last_path}); resume it, or pass "
                              "overwrite to start again there, or choose another out_dir")
        elif self.is_main:
            self._clear_outputs()
        self.last_metrics: dict | None = ckpt["metrics"] if ckpt is not None else None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", self.state.epoch if ckpt is not None else None,
                               self.is_main)

        self.train_model: nn.Module = self.model
        if dctx.active and self.params:
            from torch.nn.parallel import DistributedDataParallel

            self.train_model = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        self.eval_model: nn.Module = self.model
        if config.compile:
            mode = None if config.compile_mode == "default" else config.compile_mode
            fullgraph = config.model in _FULLGRAPH_MODELS and not dctx.active
            self.eval_model = torch.compile(self.model, mode=mode, fullgraph=config.model in _FULLGRAPH_MODELS)
            self.train_model = (self.eval_model if self.train_model is self.model
                                else torch.compile(self.train_model, mode=mode, fullgraph=fullgraph))

    # -- setup helpers

    def _checkpoint_to_resume(self) -> dict | None:
        config = self.config
        if not config.resume:
            return None
        if not self.last_path.is_file():
            raise ResumeError(f"cannot resume: no checkpoint at {self.last_path}")
        ckpt = load_checkpoint(self.last_path)
        mismatches = config.resume_mismatches(ckpt["config"])
        if mismatches:
            raise ResumeError(f"cannot resume from {self.last_path}: it was made with different settings:\n  "
                              + "\n  ".join(mismatches)
                              + "\n(start a new run in another out_dir, or use the checkpoint's settings)")
        return ckpt

    def _clear_outputs(self) -> None:
        for name in ("last.pt", "best.pt", "metrics.jsonl", "summary.json"):
            path = self.out_dir / name
            if path.exists():
                path.unlink()

    # -- distributed helpers

    def _all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.dist.active:
            dist.all_reduce(t)
        return t

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank says True (host-side, over a gloo group: no device sync)."""
        if not self.dist.active:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.dist.ctrl)
        return bool(t.item())

    def _broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank."""
        if not self.dist.active:
            return flag
        t = torch.tensor([int(flag)])
        dist.broadcast(t, src=0, group=self.dist.ctrl)
        return bool(t.item())

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (batch-norm statistics are updated from each rank's own batches)."""
        if self.dist.active:
            for b in self.model.buffers():
                dist.broadcast(b, src=0)

    # -- checkpoints

    def _checkpoint(self, lr: float, accum: torch.Tensor | None) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "state": dataclasses.asdict(self.state),
            "accum": accum,
            "world_size": self.dist.world,
            "lr": lr,
            "rng": rng_state(),
            "metrics": self.last_metrics,
        }

    def _save(self, lr: float, accum: torch.Tensor | None, best: bool = False) -> None:
        """Write last.pt (and best.pt); collective under DDP (gathers the running sums of every rank)."""
        gathered = None
        if accum is not None:
            if self.dist.active:
                parts = [torch.empty_like(accum) for _ in range(self.dist.world)]
                dist.all_gather(parts, accum)
                gathered = torch.stack(parts).cpu()
            else:
                gathered = accum[None].cpu()
        self._sync_buffers()
        if self.is_main:
            ckpt = self._checkpoint(lr, gathered)
            atomic_torch_save(ckpt, self.last_path)
            if best:
                atomic_torch_save(ckpt, self.best_path)

    def _initial_accum(self) -> torch.Tensor:
        accum = torch.zeros(4, dtype=torch.float64, device=self.device)
        saved, self.accum_saved = self.accum_saved, None
        if saved is not None:
            if self.accum_world == self.dist.world:
                accum.copy_(saved[self.dist.rank])
            elif self.dist.rank == 0:
                accum.copy_(saved.sum(0))
        return accum

    # -- the loop

    def summary(self, stopped: str, seconds: float) -> dict:
        s = self.state
        return {
            "model": self.config.model, "dataset": self.config.dataset, "lr": self.config.lr,
            "seed": self.config.seed,
            "best_val_acc": s.best_val_acc if s.best_epoch or stopped == "no_parameters" else None,
            "best_val_loss": s.best_val_loss if math.isfinite(s.best_val_loss) else None,
            "best_epoch": s.best_epoch, "epochs": s.epoch, "steps": s.global_step, "stopped": stopped,
            "checkpoint": str(self.best_path) if self.best_path.exists() or s.best_epoch else None,
            "last_checkpoint": str(self.last_path), "metrics": str(self.out_dir / "metrics.jsonl"),
            "out_dir": str(self.out_dir), "last_epoch_metrics": self.last_metrics,
            "world_size": self.dist.world, "rank": self.dist.rank, "param_digest": param_digest(self.model),
            "seconds": seconds,
        }

    def run(self) -> dict:
        start = time.perf_counter()
        if not self.params:
            stopped = self._evaluate_only()
        else:
            with StopRequest() as stop:
                stopped = self._train(stop)
        summary = self.summary(stopped, time.perf_counter() - start)
        if self.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _evaluate_only(self) -> str:
        """A model without parameters (uniform): nothing to train; evaluate it once (epoch 0 in the log)."""
        t0 = time.perf_counter()
        amp = self.config.amp
        tr = self._all_sum(evaluate_sums(self.model, self.train_data, self.eval_batch, amp=amp,
                                          rank=self.dist.rank, world=self.dist.world)).tolist()
        va = self._all_sum(evaluate_sums(self.model, self.val_data, self.eval_batch, amp=amp,
                                          rank=self.dist.rank, world=self.dist.world)).tolist()
        s = self.state
        s.best_val_acc, s.best_val_loss, s.best_epoch = va[1] / va[2], va[0] / va[2], 0
        seconds = time.perf_counter() - t0
        self.last_metrics = {
            "epoch": 0, "step": 0, "lr": None, "train_loss": tr[0] / tr[2], "train_acc": tr[1] / tr[2],
            "grad_norm": None, "val_loss": s.best_val_loss, "val_acc": s.best_val_acc, "best_val_acc": s.best_val_acc,
            "best_epoch": 0, "seconds": seconds, "images_per_s": (tr[2] + va[2]) / max(seconds, 1e-9),
        }
        self.log = MetricsLog(self.log.path, None, self.is_main)
        self.log.append(self.last_metrics)
        self._save(0.0, None, best=True)
        if self.is_main and not self.config.quiet:
            print(f"{self.config.model}: no parameters to train; train acc {fmt(tr[1] / tr[2], True)}, "
                  f"val acc {fmt(s.best_val_acc, True)}", flush=True)
        return "no_parameters"

    def _stop_reason_at_boundary(self) -> str | None:
        c, s = self.config, self.state
        if s.epoch > 0 and s.bad_epochs >= c.patience:
            return "early_stopping"
        if s.epoch >= c.max_epochs:
            return "max_epochs"
        return None

    def _train(self, stop: StopRequest) -> str:
        c, s, d = self.config, self.state, self.dist
        steps_this_call = 0

        def interrupted() -> bool:
            hook = c.stop_after_steps is not None and steps_this_call >= c.stop_after_steps
            return self._agree(stop.reason is not None or hook)

        while True:
            if s.step == 0:
                reason = self._broadcast_flag(self._stop_reason_at_boundary() is not None)
                if reason:
                    return self._stop_reason_at_boundary() or "early_stopping"
                if interrupted():
                    return "interrupted"
            epoch = s.epoch + 1
            lr = lr_at_epoch(epoch, c.lr, c.decay_start, c.decay_every, c.decay_factor)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            perm = epoch_permutation(c.seed, epoch, len(self.train_data)).to(self.train_data.storage)
            sparsity = c.gate_sparsity if epoch > c.gate_sparsity_start else 0.0
            accum = self._initial_accum()
            self.train_model.train()
            bar = self._progress_bar(epoch)
            t_epoch = time.perf_counter()
            seconds_before, train_seconds_before = s.epoch_seconds, s.epoch_train_seconds
            lo, hi = d.rank * self.local_batch, (d.rank + 1) * self.local_batch
            batch_count = torch.tensor(float(self.local_batch), dtype=torch.float64, device=self.device)
            for step in range(s.step, self.steps_per_epoch):
                if interrupted():
                    s.epoch_seconds = seconds_before + time.perf_counter() - t_epoch
                    s.epoch_train_seconds = train_seconds_before + time.perf_counter() - t_epoch
                    self._save(lr, accum)
                    if bar is not None:
                        bar.close()
                    return "interrupted"
                idx = perm[step * c.batch_size: (step + 1) * c.batch_size][lo:hi]
                images, query, answer = self.train_data.gather(idx)
                if c.compile:
                    torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graphs (reduce-overhead)
                loss, correct, grad_norm = train_step(self.train_model, self.optimizer, images, query, answer,
                                                      clip_norm=c.clip_norm, amp=c.amp, gate_sparsity=sparsity,
                                                      num_gates=self.num_gates, gate_kind=c.gate_sparsity_kind)
                accum += torch.stack([loss.double() * self.local_batch, correct.double(), batch_count,
                                      grad_norm.double()])
                s.step, s.global_step = step + 1, s.global_step + 1
                steps_this_call += 1
                if bar is not None:
                    bar.update(1)
                    if s.step % c.log_every == 0 or s.step == self.steps_per_epoch:
                        a = accum.tolist()  # a log point: the only host sync inside the epoch
                        bar.set_postfix(loss=f"{a[0] / a[2]:.4f}", acc=f"{100 * a[1] / a[2]:.1f}%")
            if bar is not None:
                bar.close()
            train_seconds = train_seconds_before + time.perf_counter() - t_epoch
            self._end_epoch(epoch, lr, accum, seconds_before, t_epoch, train_seconds)

    def _progress_bar(self, epoch: int):
        c = self.config
        if c.quiet or not self.is_main or not sys.stderr.isatty():
            return None
        from tqdm import tqdm

        return tqdm(total=self.steps_per_epoch, initial=self.state.step, desc=f"epoch {epoch}", unit="step",
                    leave=False, dynamic_ncols=True, file=sys.stderr)

    def _end_epoch(self, epoch: int, lr: float, accum: torch.Tensor, seconds_before: float, t_epoch: float,
                   train_seconds: float) -> None:
        c, s, d = self.config, self.state, self.dist
        tr = self._all_sum(accum).tolist()
        self._sync_buffers()
        va = self._all_sum(evaluate_sums(self.eval_model, self.val_data, self.eval_batch, amp=c.amp,
                                          rank=d.rank, world=d.world)).tolist()
        val_loss, val_acc = va[0] / va[2], va[1] / va[2]
        improved = val_acc > s.best_val_acc
        if improved:
            s.best_val_acc, s.best_val_loss, s.best_epoch, s.bad_epochs = val_acc, val_loss, epoch, 0
        else:
            s.bad_epochs += 1
        s.epoch, s.step = epoch, 0
        seconds = seconds_before + time.perf_counter() - t_epoch
        s.epoch_seconds = s.epoch_train_seconds = 0.0
        self.last_metrics = {
            "epoch": epoch, "step": s.global_step, "lr": lr, "train_loss": tr[0] / tr[2], "train_acc": tr[1] / tr[2],
            "grad_norm": tr[3] / (self.steps_per_epoch * d.world), "val_loss": val_loss, "val_acc": val_acc,
            "best_val_acc": s.best_val_acc, "best_epoch": s.best_epoch, "seconds": seconds,
            "images_per_s": self.steps_per_epoch * c.batch_size / max(train_seconds, 1e-9),
        }
        self.log.append(self.last_metrics)  # before the checkpoint: a crash in between redoes (and re-logs) the epoch
        self._save(lr, None, best=improved)
        if self.is_main and not c.quiet:
            m = self.last_metrics
            print(f"epoch {epoch:4d}  train loss {fmt(m['train_loss'])} acc {fmt(m['train_acc'], True)}  "
                  f"val loss {fmt(val_loss)} acc {fmt(val_acc, True)}{' *' if improved else '  '}  "
                  f"lr {lr:.3g}  {seconds:.1f}s  {m['images_per_s']:.0f} img/s", flush=True)
