"""The training loop (SPEC §6): RMSprop, lr schedule, gradient clipping, early stopping, checkpoints, exact resume,
JSON-lines metrics, progress bar, torch.compile / bf16 autocast, and DistributedDataParallel under torchrun.

Batches: epoch ``e`` visits the training examples in ``epoch_permutation(seed, e)``; step ``s`` takes the global
batch ``perm[s*B:(s+1)*B]`` (``B = batch_size``) and, with ``W`` processes, rank ``r`` takes its ``r``-th slice of
``B // W`` examples. The last partial batch of an epoch is dropped (every step has the same shape, which suits
torch.compile and CUDA graphs; the permutation changes every epoch, so every example is still used). Validation
uses every example, in fixed-shape batches whose padding is masked out.

Resume: a checkpoint (``out_dir/last.pt``) is written after every epoch and when the run is interrupted (SIGINT /
SIGTERM, or the ``stop_after_steps`` test hook) between two steps, with the step position and the running training
sums. Since the batch order, the lr schedule and early stopping depend only on ``(seed, epoch, step)`` and the
saved state — never on ``max_epochs`` or on where a run stopped — a resumed run computes the same steps as an
uninterrupted one (bit-exact on CPU; on GPU with ``deterministic=True`` and the same world size).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pan.train.checkpoint import CHECKPOINT_FORMAT, ResumeError, atomic_torch_save, load_checkpoint
from pan.train.config import TrainConfig
from pan.train.data import ResidentData, epoch_permutation
from pan.train.distributed import Dist, setup_distributed, teardown_distributed
from pan.train.schedule import lr_at_epoch

__all__ = ["train", "lr_grid", "train_step", "evaluate", "load_datasets", "TIMING_FIELDS", "param_digest"]

#: Fields of a metrics line that measure time (they differ between an interrupted-and-resumed and a straight run).
TIMING_FIELDS = ("seconds", "images_per_s")
_FULLGRAPH_MODELS = ("san", "han", "pan-s", "pan-h", "pan-s-ctx", "pan-h-ctx")


# --------------------------------------------------------------------------------------------------------------------
# One step, one evaluation


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, query: torch.Tensor,
               answer: torch.Tensor, *, clip_norm: float | None = 5.0,
               amp: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step on the NLL of ``answer``; returns (mean loss, number correct, gradient norm before
    clipping) as device tensors (no host sync). Gradients are clipped to total norm ``clip_norm`` (None: not)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(images, query)
    log_probs = out.log_probs.float()
    loss = F.nll_loss(log_probs, answer)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    max_norm = float("inf") if clip_norm is None else clip_norm
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    correct = (log_probs.detach().argmax(dim=1) == answer).sum()
    return loss.detach(), correct, grad_norm.detach()


@torch.no_grad()
def _evaluate_sums(model: nn.Module, data: ResidentData, batch_size: int, *, amp: bool = False, rank: int = 0,
                   world: int = 1) -> torch.Tensor:
    """[loss sum, correct, count] (float64, on the device) over this rank's share of the fixed-shape batches."""
    was_training = model.training
    model.eval()
    batches, valid = data.padded_batches(batch_size)
    sums = torch.zeros(3, dtype=torch.float64, device=data.device)
    for b in range(rank, batches.shape[0], world):
        images, query, answer = data.gather(batches[b])
        with torch.autocast(device_type=data.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(images, query)
        log_probs = out.log_probs.float()
        mask = valid[b]
        nll = F.nll_loss(log_probs, answer, reduction="none")
        correct = (log_probs.argmax(dim=1) == answer) & mask
        sums += torch.stack([(nll * mask).sum().double(), correct.sum().double(), mask.sum().double()])
    model.train(was_training)
    return sums


def evaluate(model: nn.Module, dataset: Any, *, batch_size: int = 200, device: str | torch.device | None = None,
             amp: bool = False) -> dict:
    """Mean NLL (``loss``) and answer accuracy (``acc``, a fraction) of ``model`` on a PanDataset."""
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    sums = _evaluate_sums(model, ResidentData(dataset, device), batch_size, amp=amp).tolist()
    return {"loss": sums[0] / sums[2], "acc": sums[1] / sums[2], "count": int(sums[2])}


def param_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``model`` (state-dict order): equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------------
# Processes, devices, data


def load_datasets(config: TrainConfig) -> tuple[Any, Any]:
    """The (train, val) PanDatasets of ``config``: from ``train_file`` / ``val_file`` when given, else generated (or
    read from the cache) by ``pan.data.make_dataset``. Under torchrun, rank 0 goes first so it alone fills the cache.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and dist.get_rank() != 0:
        dist.barrier()
        out = _load_datasets(config)
    else:
        out = _load_datasets(config)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.barrier()
    return out


def _load_datasets(config: TrainConfig) -> tuple[Any, Any]:
    from pan.data import PanDataset, make_dataset

    if config.train_file is not None:
        return PanDataset.load(config.train_file), PanDataset.load(config.val_file)
    kwargs: dict[str, Any] = {"seed": config.data_seed, "mnist_dir": config.mnist_dir}
    if config.no_cache:
        kwargs["cache_dir"] = None
    elif config.cache_dir is not None:
        kwargs["cache_dir"] = config.cache_dir
    return (make_dataset(config.dataset, "train", config.num_train, **kwargs),
            make_dataset(config.dataset, "val", config.num_val, **kwargs))


class _StopRequest:
    """SIGINT / SIGTERM set a flag (the run stops between two steps and saves); a second SIGINT raises
    KeyboardInterrupt as usual. Handlers are installed only from the main thread."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.reason = signal.Signals(signum).name
        print(f"\npan train: {self.reason} received; stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, self._previous.get(signal.SIGINT, signal.default_int_handler))

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class _State:
    """What a checkpoint needs besides weights and optimizer: all counters are global (the same on every rank)."""

    epoch: int = 0  # completed epochs
    step: int = 0  # steps done in epoch `epoch + 1` (0 at an epoch boundary)
    global_step: int = 0
    best_val_acc: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one
    epoch_seconds: float = 0.0  # time already spent in the current (partial) epoch
    epoch_train_seconds: float = 0.0


class _MetricsLog:
    """out_dir/metrics.jsonl, one JSON object per epoch; on resume, lines after the checkpoint's epoch are dropped."""

    def __init__(self, path: Path, keep_epochs: int | None, enabled: bool):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        lines: list[str] = []
        if keep_epochs is not None and path.exists():
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line).get("epoch", 0) <= keep_epochs:
                    lines.append(line)
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in lines))
        os.replace(tmp, path)

    def append(self, entry: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.2f}%" if pct else f"{x:.4f}"


class _Run:
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
        self.train_data = ResidentData(train_data, device)
        self.val_data = ResidentData(val_data, device)
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
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = None
        if self.params:
            self.optimizer = torch.optim.RMSprop(self.params, lr=config.lr, alpha=config.rmsprop_alpha,
                                                 eps=config.rmsprop_eps)
        self.state = _State()
        self.accum_saved: torch.Tensor | None = None
        self.accum_world = 1
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            if self.optimizer is not None and ckpt["optimizer"] is not None:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            self.state = _State(**ckpt["state"])
            self.accum_saved, self.accum_world = ckpt["accum"], ckpt["world_size"]
            _set_rng_state(ckpt["rng"])
        elif self.last_path.exists() and not config.overwrite:
            raise ResumeError(f"{self.out_dir} already holds a run ({self.last_path}); resume it, or pass "
                              "overwrite to start again there, or choose another out_dir")
        elif self.is_main:
            self._clear_outputs()
        self.last_metrics: dict | None = ckpt["metrics"] if ckpt is not None else None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        self.log = _MetricsLog(self.out_dir / "metrics.jsonl", self.state.epoch if ckpt is not None else None,
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
            "rng": _rng_state(),
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
            with _StopRequest() as stop:
                stopped = self._train(stop)
        summary = self.summary(stopped, time.perf_counter() - start)
        if self.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _evaluate_only(self) -> str:
        """A model without parameters (uniform): nothing to train; evaluate it once (epoch 0 in the log)."""
        t0 = time.perf_counter()
        amp = self.config.amp
        tr = self._all_sum(_evaluate_sums(self.model, self.train_data, self.eval_batch, amp=amp,
                                          rank=self.dist.rank, world=self.dist.world)).tolist()
        va = self._all_sum(_evaluate_sums(self.model, self.val_data, self.eval_batch, amp=amp,
                                          rank=self.dist.rank, world=self.dist.world)).tolist()
        s = self.state
        s.best_val_acc, s.best_val_loss, s.best_epoch = va[1] / va[2], va[0] / va[2], 0
        seconds = time.perf_counter() - t0
        self.last_metrics = {
            "epoch": 0, "step": 0, "lr": None, "train_loss": tr[0] / tr[2], "train_acc": tr[1] / tr[2],
            "grad_norm": None, "val_loss": s.best_val_loss, "val_acc": s.best_val_acc, "best_val_acc": s.best_val_acc,
            "best_epoch": 0, "seconds": seconds, "images_per_s": (tr[2] + va[2]) / max(seconds, 1e-9),
        }
        self.log = _MetricsLog(self.log.path, None, self.is_main)
        self.log.append(self.last_metrics)
        self._save(0.0, None, best=True)
        if self.is_main and not self.config.quiet:
            print(f"{self.config.model}: no parameters to train; train acc {_fmt(tr[1] / tr[2], True)}, "
                  f"val acc {_fmt(s.best_val_acc, True)}", flush=True)
        return "no_parameters"

    def _stop_reason_at_boundary(self) -> str | None:
        c, s = self.config, self.state
        if s.epoch > 0 and s.bad_epochs >= c.patience:
            return "early_stopping"
        if s.epoch >= c.max_epochs:
            return "max_epochs"
        return None

    def _train(self, stop: _StopRequest) -> str:
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
                                                      clip_norm=c.clip_norm, amp=c.amp)
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
        va = self._all_sum(_evaluate_sums(self.eval_model, self.val_data, self.eval_batch, amp=c.amp,
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
            print(f"epoch {epoch:4d}  train loss {_fmt(m['train_loss'])} acc {_fmt(m['train_acc'], True)}  "
                  f"val loss {_fmt(val_loss)} acc {_fmt(val_acc, True)}{' *' if improved else '  '}  "
                  f"lr {lr:.3g}  {seconds:.1f}s  {m['images_per_s']:.0f} img/s", flush=True)


def train(config: TrainConfig, *, train_data: Any = None, val_data: Any = None) -> dict:
    """Train ``config.model`` as SPEC §6 says; returns a summary dict.

    ``train_data`` / ``val_data`` (PanDataset-like objects: ``images``, ``image_index``, ``query``, ``answer``)
    replace the datasets the config names. Under ``torchrun`` (WORLD_SIZE > 1) every process calls this; rank 0
    writes the outputs. Summary keys: ``best_val_acc``, ``best_val_loss``, ``best_epoch``, ``epochs`` (completed),
    ``steps``, ``stopped`` ("early_stopping" | "max_epochs" | "interrupted" | "no_parameters"), ``checkpoint``
    (best.pt), ``last_checkpoint``, ``metrics`` (metrics.jsonl), ``out_dir``, ``last_epoch_metrics``,
    ``param_digest`` (of this rank's weights), ``world_size``, ``rank``, ``seconds``, and the config's ``model``,
    ``dataset``, ``lr``, ``seed``.
    """
    config.validate()
    dctx, device = setup_distributed(config.device)
    if train_data is None or val_data is None:
        train_data, val_data = load_datasets(config)
    summary = _Run(config, dctx, device, train_data, val_data).run()
    teardown_distributed(dctx)
    return summary


def lr_grid(config: TrainConfig, lrs: tuple[float, ...] | list[float] = (0.001, 0.002, 0.005), *,
            train_data: Any = None, val_data: Any = None) -> dict:
    """Train once per initial learning rate (in ``out_dir/lr_<lr>/``) and keep the one with the best validation
    accuracy (ties: the earlier lr in ``lrs``); writes and returns ``out_dir/best.json``: ``best_lr``,
    ``best_val_acc``, ``best_epoch``, ``checkpoint``, ``out_dir`` (of the best run), ``runs`` (every run's summary)
    and ``complete`` (False when a run was interrupted; the grid then stops there). With ``config.resume``, each run
    that has a checkpoint resumes and the others start."""
    lrs = [float(lr) for lr in lrs]
    if not lrs or any(not (math.isfinite(lr) and lr > 0) for lr in lrs):
        raise ValueError(f"the lr grid must be a non-empty list of positive numbers, got {lrs}")
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"the lr grid has duplicates: {lrs}")
    out_dir = Path(config.out_dir)
    if config.resume and not any((out_dir / f"lr_{lr:g}" / "last.pt").is_file() for lr in lrs):
        raise ResumeError(f"cannot resume: no checkpoint under {out_dir}/lr_*/last.pt")
    dctx, _ = setup_distributed(config.device)
    if train_data is None or val_data is None:
        train_data, val_data = load_datasets(config)
    runs = []
    for lr in lrs:
        sub_dir = out_dir / f"lr_{lr:g}"
        sub = dataclasses.replace(config, lr=lr, out_dir=str(sub_dir),
                                  resume=config.resume and (sub_dir / "last.pt").is_file())
        runs.append(train(sub, train_data=train_data, val_data=val_data))
        if runs[-1]["stopped"] == "interrupted":
            break
    done = [r for r in runs if r["best_val_acc"] is not None]
    best = max(done, key=lambda r: r["best_val_acc"]) if done else None  # max keeps the first of equals
    result = {
        "best_lr": best["lr"] if best else None, "best_val_acc": best["best_val_acc"] if best else None,
        "best_epoch": best["best_epoch"] if best else None, "checkpoint": best["checkpoint"] if best else None,
        "out_dir": best["out_dir"] if best else None, "lrs": lrs,
        "complete": len(runs) == len(lrs) and runs[-1]["stopped"] != "interrupted", "runs": runs,
    }
    if dctx.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / "best.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out_dir / "best.json")
    teardown_distributed(dctx)
    return result
