"""Process-group setup for DistributedDataParallel under torchrun (nccl on CUDA, gloo on CPU), plus a gloo group for
host-side control flags, and the training device choice."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Dist", "rank_zero_first", "resolve_device", "setup_distributed", "teardown_distributed"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False
    ctrl: Any = None  # a gloo group for host-side control flags (None: the default group)

    @property
    def active(self) -> bool:
        return self.world > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" -> cuda when available, else cpu; a bare "cuda" -> this process's GPU. Unavailable CUDA is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group (env WORLD_SIZE > 1): nccl on CUDA, gloo on CPU. A no-op otherwise.

    A group this creates lives until the process exits (later train() calls reuse it: re-creating a group in the
    same torchrun worker is not reliable), and is destroyed at exit."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
    device = resolve_device(device_name, local_rank if world > 1 else 0)
    if world <= 1:
        return Dist(), device
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy_group)
        created = True
    global _CTRL_GROUP
    if dist.get_backend() == "gloo":
        ctrl = None
    else:
        if _CTRL_GROUP is None:
            _CTRL_GROUP = dist.new_group(backend="gloo")
        ctrl = _CTRL_GROUP
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, created, ctrl), device


_CTRL_GROUP: Any = None


def _destroy_group() -> None:
    global _CTRL_GROUP
    if dist.is_initialized():
        dist.destroy_process_group()
    _CTRL_GROUP = None


def teardown_distributed(d: Dist) -> None:
    """Wait for every rank (rank 0 may still be writing); the group itself stays (see setup_distributed)."""
    if d.active and dist.is_initialized():
        dist.barrier()


def rank_zero_first(fn: Callable[[], Any]) -> Any:
    """``fn()`` on every rank, rank 0 first (so it alone fills a cache the others then read); plain ``fn()`` outside
    torchrun."""
    group = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if group and dist.get_rank() != 0:
        dist.barrier()
    out = fn()
    if group and dist.get_rank() == 0:
        dist.barrier()
    return out
