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
