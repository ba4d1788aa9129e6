"""Provenance of a measured number: device, versions, git SHA, date and the command, in one dict.

Every result file the project writes (benchmarks, the demo, data timings) carries this header, so a number can be
found again and compared only with numbers from the same machine.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["command_line", "device_name", "git_sha", "make_header"]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_sha() -> str:
    """HEAD's commit, or "unknown" outside a git checkout."""
    return _git("rev-parse", "HEAD") or "unknown"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_name()


def command_line() -> str:
    """The command as typed: `pan bench ...`, `python -m pan.bench ...` or the script and its arguments."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if argv0.name == "__main__.py":
        argv0 = Path(f"python -m {argv0.parent.name}")
    elif argv0.name in ("pan", "pytest", "py.test"):
        argv0 = Path(argv0.name)
    return " ".join([str(argv0)] + [shlex.quote(a) for a in sys.argv[1:]])


def make_header(device: torch.device, command: str | None = None) -> dict:
    """Everything needed to find a number again: device, versions, git SHA, date, the command."""
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    import pan_kernels
    from pan_kernels._backend import triton_interpreting

    dirty = _git("status", "--porcelain", "--untracked-files=no")
    header = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda": torch.version.cuda,
        "git_sha": git_sha(),
        "git_dirty": bool(dirty) if dirty is not None else None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else command_line(),
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "cuda_extension": pan_kernels.has_cuda_extension(),
        "triton_interpret": triton_interpreting(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        header["gpu"] = {"capability": f"{props.major}.{props.minor}", "sm_count": props.multi_processor_count,
                         "memory_gb": round(props.total_memory / 1e9, 1), "driver_cuda": torch.version.cuda}
    return header
