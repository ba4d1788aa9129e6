"""argparse value types shared by every `pan` subcommand: a bad value becomes a clear usage error (exit code 2)."""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type, low: float, inclusive: bool, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < low or (value == low and not inclusive):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 1, True, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, 0, True, "a non-negative integer")


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, False, "a positive number")


def non_negative_float(text: str) -> float:
    return _number(text, float, 0.0, True, "a non-negative number")


def gate_weights(text: str) -> float | list[float]:
    """``0.3`` (every gate) or ``0.3,0.1,0.1`` (one non-negative weight per gate, first gate first)."""
    parts = text.split(",")
    values = [non_negative_float(part.strip()) for part in parts]
    return values[0] if len(parts) == 1 else values


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``: a device torch knows and this machine has."""
    import torch

    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA GPU is available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


def backend_problem(backend: str, device: str) -> str | None:
    """None when the pan_kernels ``backend`` can run on ``device`` (a `device_name`), else why not."""
    if backend in ("auto", "torch"):
        return None
    import torch

    from pan_kernels._backend import _cuda_usable, _triton_usable

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    usable = _triton_usable if backend == "triton" else _cuda_usable
    return usable(torch.device(device))


def source_problem(dataset: str | None, mnist_dir=None, backgrounds_dir=None, cache_dir=None) -> str | None:
    """A one-line message for a data-source directory that cannot be used (missing, a file, not for this dataset)
    or a --cache-dir that is a file; None when they are usable."""
    from pathlib import Path

    for flag, value in (("--mnist-dir", mnist_dir), ("--backgrounds-dir", backgrounds_dir)):
        if value is not None and not Path(value).is_dir():
            return f"{flag} {value}: " + ("is a file, not a directory" if Path(value).exists() else "no such directory")
    if backgrounds_dir is not None and dataset != "mbg":
        return f"--backgrounds-dir only applies to --dataset mbg (got {dataset})"
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        return f"--cache-dir {cache_dir} is a file, not a directory"
    return None


def flagged(message: str, flags: dict[str, str]) -> str:
    """``message`` with a leading library field name (``decay_factor must ...``) replaced by its command-line flag,
    or ``unknown model ...`` led by the flag (``--model: unknown model ...``)."""
    head, _, rest = message.partition(" ")
    if head in flags:
        return f"{flags[head]} {rest}"
    second = rest.partition(" ")[0]
    return f"{flags[second]}: {message}" if head == "unknown" and second in flags else message
