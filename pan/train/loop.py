"""The training engine (docs/design.md, Training) as an object, for any `pan.train.task.Task` (MREF, Visual Genome):
set-up (model, optimizer, resume), the epoch loop, validation, early stopping, checkpoints (epoch end, wall-clock timer,
interruption), the divergence stop; DDP-aware. `pan.train.train` and `pan.train.real_images.train_real_images` are the
public entry points.

Batches: epoch ``e`` visits the training examples in ``epoch_permutation(seed, e, N)``; step ``s`` takes the global
batch ``perm[s*B:(s+1)*B]`` and rank ``r`` of ``W`` takes its slice ``[r*B/W, (r+1)*B/W)`` of it. Checkpoints
record the step position and the running training sums, so a resumed run computes the same steps as an
uninterrupted one (bit-exact on CPU; on GPU with deterministic kernels and the same world size).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from pan.train.checkpoint import CHECKPOINT_FORMAT, ResumeError, atomic_torch_save, load_checkpoint
from pan.train.data import epoch_permutation
from pan.train.distributed import Dist
from pan.train.divergence import FiniteWatch, TrainingDiverged, describe
from pan.train.interrupt import StopRequest
from pan.train.run_state import MetricsLog, RunState, rng_state, set_rng_state
from pan.train.step import param_digest
from pan.train.task import Task

__all__ = ["TrainingRun", "TIMING_FIELDS"]

#: Fields of a metrics line that measure time (they differ between an interrupted-and-resumed and a straight run).
TIMING_FIELDS = ("seconds", "images_per_s")


class TrainingRun:
    def __init__(self, task: Task, dctx: Dist, device: torch.device):
        self.task, self.config, self.dist, self.device = task, task.settings, dctx, device
        config = self.config
        self.is_main = dctx.rank == 0
        self.out_dir = Path(config.out_dir)
        self.last_path, self.best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        ckpt = self._checkpoint_to_resume()

        if config.batch_size % dctx.world:
            raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes "
                             f"({dctx.world})")
        num_examples = task.prepare(device)
        self.steps_per_epoch = num_examples // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {config.batch_size} is larger than the training set "
                             f"({num_examples} examples)")
        self.num_examples = num_examples
        self.local_batch = config.batch_size // dctx.world

        if device.type == "cuda":
            torch.backends.cudnn.deterministic = config.deterministic
            torch.backends.cudnn.benchmark = not config.deterministic
        torch.manual_seed(config.seed)
        self.model = task.build_model().to(device)
        if ckpt is None:
            task.initialise(self.model)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = task.build_optimizer(self.model, self.params) if self.params else None
        self.state = RunState()
        self.accum_saved: torch.Tensor | None = None
        self.accum_world = 1
        self.saved_at: tuple[int, int] | None = None  # (epochs, steps) of the last checkpoint written or resumed
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            if self.optimizer is not None and ckpt["optimizer"] is not None:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            self.state = RunState(**ckpt["state"])
            self.accum_saved, self.accum_world = ckpt["accum"], ckpt["world_size"]
            set_rng_state(ckpt["rng"])
            self.saved_at = (self.state.epoch, self.state.step)
        elif self.last_path.exists() and not config.overwrite:
            raise ResumeError(f"{self.out_dir} already holds a run ({self.last_path}); resume it, or pass "
                              "overwrite to start again there, or choose another out_dir")
        elif self.is_main:
            self._clear_outputs()
        self.last_metrics: dict | None = ckpt["metrics"] if ckpt is not None else None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(task.config_dict(), indent=2) + "\n")
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
            fullgraph = task.fullgraph and not dctx.active
            self.eval_model = torch.compile(self.model, mode=mode, fullgraph=task.fullgraph)
            self.train_model = (self.eval_model if self.train_model is self.model
                                else torch.compile(self.train_model, mode=mode, fullgraph=fullgraph))
        self.watch = FiniteWatch(device, self.state.global_step)
        self._restart_timer()

    # -- setup helpers

    def _checkpoint_to_resume(self) -> dict | None:
        if not self.config.resume:
            return None
        if not self.last_path.is_file():
            raise ResumeError(f"cannot resume: no checkpoint at {self.last_path}")
        ckpt = load_checkpoint(self.last_path)
        mismatches = self.task.resume_mismatches(ckpt["config"])
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

    def _agree(self, *flags: bool) -> list[bool]:
        """Each flag True on every rank when any rank says True (host-side, over a gloo group: no device sync)."""
        if not self.dist.active:
            return list(flags)
        t = torch.tensor([int(f) for f in flags])
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.dist.ctrl)
        return [bool(v) for v in t.tolist()]

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

    def _restart_timer(self) -> None:
        every = float(getattr(self.config, "checkpoint_every", 0) or 0)
        self.next_timed = time.monotonic() + 60 * every if every > 0 else math.inf

    def _checkpoint(self, lr: float, accum: torch.Tensor | None) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.task.config_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "state": dataclasses.asdict(self.state),
            "accum": accum,
            "world_size": self.dist.world,
            "lr": lr,
            "rng": rng_state(),
            "metrics": self.last_metrics,
            **self.task.checkpoint_extras(),
        }

    def _save(self, lr: float, accum: torch.Tensor | None, best: bool = False) -> None:
        """Write last.pt (and best.pt); collective under DDP (gathers the running sums of every rank). Refuses
        (TrainingDiverged) non-finite weights."""
        self._check_finite(weights=True)
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
        self.saved_at = (self.state.epoch, self.state.step)
        self._restart_timer()

    def _initial_accum(self) -> torch.Tensor:
        accum = torch.zeros(self.task.accum_size, dtype=torch.float64, device=self.device)
        saved, self.accum_saved = self.accum_saved, None
        if saved is not None:
            if self.accum_world == self.dist.world:
                accum.copy_(saved[self.dist.rank])
            elif self.dist.rank == 0:
                accum.copy_(saved.sum(0))
        return accum

    # -- the divergence stop

    def _bad_step(self, weights: bool = False) -> tuple[int, int] | None:
        """(global step, kind) of the first non-finite loss / gradient norm (kind 0: weights), agreed by all ranks."""
        bad = self.watch.bad()
        if bad is None and weights and self.params:
            if not bool(torch.stack([torch.isfinite(p).all() for p in self.params]).all()):
                bad = (self.state.global_step, 0)
        if self._agree(bad is not None)[0] and bad is None:  # another rank's loss: its gradients reached ours
            bad = (self.state.global_step, 2)
        return bad

    def _check_finite(self, weights: bool = False) -> None:
        bad = self._bad_step(weights)
        if bad is not None:
            self._diverged(*bad)

    def _diverged(self, global_step: int, kind: int) -> None:
        c, s = self.config, self.state
        epoch, step = divmod(global_step - 1, self.steps_per_epoch)
        if self.saved_at is None:
            kept = "no checkpoint was written"
        else:
            kept = f"kept {self.last_path} ({self.saved_at[0]} epochs + {self.saved_at[1]} steps done)"
        lr = getattr(self, "current_lr", None)
        clip = "off" if c.clip_norm is None else f"{c.clip_norm:g}"
        message = (f"training diverged at epoch {epoch + 1}, step {step + 1} of {self.steps_per_epoch} (global step "
                   f"{global_step}): {describe(kind)}; {kept}; try a lower --lr (now {lr:g}) or a smaller "
                   f"--clip-norm (now {clip})")
        summary = self.summary("diverged", time.perf_counter() - self.start)
        summary["error"] = message
        summary["param_digest"] = None
        if self.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        s.step = step  # not saved: for the record only
        raise TrainingDiverged(message, summary)

    # -- the loop

    def summary(self, stopped: str, seconds: float) -> dict:
        s = self.state
        return {
            **self.task.summary_fields(),
            "best_val_acc": s.best_val_acc if s.best_epoch or stopped == "no_parameters" else None,
            "best_val_loss": s.best_val_loss if math.isfinite(s.best_val_loss) else None,
            "best_epoch": s.best_epoch, "epochs": s.epoch, "steps": s.global_step, "stopped": stopped,
            "checkpoint": str(self.best_path) if self.best_path.exists() or s.best_epoch else None,
            "last_checkpoint": str(self.last_path), "metrics": str(self.out_dir / "metrics.jsonl"),
            "out_dir": str(self.out_dir), "last_epoch_metrics": self.last_metrics,
            "world_size": self.dist.world, "rank": self.dist.rank,
            "param_digest": param_digest(self.model) if stopped != "diverged" else None,
            "seconds": seconds,
        }

    def run(self) -> dict:
        self.start = time.perf_counter()
        if not self.params:
            stopped = self._evaluate_only()
        else:
            with StopRequest() as stop:
                stopped = self._train(stop)
        summary = self.summary(stopped, time.perf_counter() - self.start)
        if self.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _evaluate_only(self) -> str:
        """A model without parameters (uniform): nothing to train; evaluate it once (epoch 0 in the log)."""
        line, score, loss, message = self.task.evaluate_only(self.model, self.dist.rank, self.dist.world,
                                                             self._all_sum)
        s = self.state
        s.best_val_acc, s.best_val_loss, s.best_epoch = score, loss, 0
        self.last_metrics = line
        self.log = MetricsLog(self.log.path, None, self.is_main)
        self.log.append(self.last_metrics)
        self._save(0.0, None, best=True)
        if self.is_main and not self.config.quiet:
            print(message, flush=True)
        return "no_parameters"

    def _stop_reason_at_boundary(self) -> str | None:
        c, s = self.config, self.state
        if c.patience is not None and s.epoch > 0 and s.bad_epochs >= c.patience:
            return "early_stopping"
        if s.epoch >= c.max_epochs:
            return "max_epochs"
        return None

    def _train(self, stop: StopRequest) -> str:
        c, s, d = self.config, self.state, self.dist
        steps_this_call = 0
        check_every_step = self.device.type == "cpu"  # reading a CPU flag is free; on a GPU it is a sync

        def flags(check_bad: bool) -> tuple[bool, bool, bool]:
            """(stop, timed checkpoint due, a bad step seen), agreed by all ranks in one collective."""
            hook = c.stop_after_steps is not None and steps_this_call >= c.stop_after_steps
            bad = check_bad and self.watch.bad() is not None
            return tuple(self._agree(stop.reason is not None or hook, time.monotonic() >= self.next_timed, bad))

        while True:
            if s.step == 0:
                reason = self._broadcast_flag(self._stop_reason_at_boundary() is not None)
                if reason:
                    return self._stop_reason_at_boundary() or "early_stopping"
                if flags(False)[0]:
                    return "interrupted"
            epoch = s.epoch + 1
            lr = self.current_lr = self.task.set_lr(self.optimizer, epoch)
            perm = epoch_permutation(c.seed, epoch, self.num_examples).to(self.task.index_device())
            accum = self._initial_accum()
            self.train_model.train()
            bar = self._progress_bar(epoch)
            t_epoch = time.perf_counter()
            seconds_before, train_seconds_before = s.epoch_seconds, s.epoch_train_seconds
            first_step = s.step
            lo, hi = d.rank * self.local_batch, (d.rank + 1) * self.local_batch
            batches = self.task.batches(epoch, (perm[k * c.batch_size: (k + 1) * c.batch_size][lo:hi]
                                                for k in range(first_step, self.steps_per_epoch)))
            for step in range(first_step, self.steps_per_epoch):
                check_bad = check_every_step or (step > first_step and step % c.log_every == 0)
                interrupted, due, bad = flags(check_bad)
                if bad:
                    self._check_finite()
                if interrupted or due:
                    s.epoch_seconds = seconds_before + time.perf_counter() - t_epoch
                    s.epoch_train_seconds = train_seconds_before + time.perf_counter() - t_epoch
                    self._save(lr, accum)
                    if interrupted:
                        if bar is not None:
                            bar.close()
                        return "interrupted"
                batch = next(batches)
                if c.compile:
                    torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graphs (reduce-overhead)
                sums, loss, grad_norm = self.task.train_step(self.train_model, self.optimizer, batch, epoch,
                                                             self.local_batch)
                accum += sums
                self.watch.update(loss, grad_norm)
                s.step, s.global_step = step + 1, s.global_step + 1
                steps_this_call += 1
                if bar is not None:
                    bar.update(1)
                    if s.step % c.log_every == 0 or s.step == self.steps_per_epoch:
                        a = accum.tolist()  # a log point: the only host sync inside the epoch
                        rate = (s.step - first_step) * c.batch_size / max(time.perf_counter() - t_epoch, 1e-9)
                        bar.set_postfix({**self.task.postfix(a), "img/s": f"{rate:.0f}"})
            if bar is not None:
                bar.close()
            self._check_finite(weights=True)
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
        score, val = self.task.validate(self.eval_model, d.rank, d.world, self._all_sum)
        improved = score > s.best_val_acc
        if improved:
            s.best_val_acc, s.best_val_loss, s.best_epoch, s.bad_epochs = (score, val.get("val_loss", math.inf),
                                                                           epoch, 0)
        else:
            s.bad_epochs += 1
        s.epoch, s.step = epoch, 0
        seconds = seconds_before + time.perf_counter() - t_epoch
        s.epoch_seconds = s.epoch_train_seconds = 0.0
        self.last_metrics = self.task.epoch_line(
            epoch=epoch, global_step=s.global_step, lr=lr, train=tr, steps=self.steps_per_epoch, world=d.world,
            val=val, best_score=s.best_val_acc, best_epoch=s.best_epoch, seconds=seconds,
            images_per_s=self.steps_per_epoch * c.batch_size / max(train_seconds, 1e-9))
        self.log.append(self.last_metrics)  # before the checkpoint: a crash in between redoes (and re-logs) the epoch
        self._save(lr, None, best=improved)
        if self.is_main and not c.quiet:
            print(self.task.epoch_message(self.last_metrics, improved), flush=True)
