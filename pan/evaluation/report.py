"""What the analysis scripts share: the checkpoint they read and the JSON report they print and may write."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_out_argument", "check_out", "load_checkpoint_model", "emit_report"]


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    """``--out FILE``: also write the report there; an existing file is refused (see `emit_report`)."""
    parser.add_argument("--out", type=Path, default=None, help="also write the result JSON here (not over a file)")


def check_out(parser: argparse.ArgumentParser, out: Path | None) -> None:
    """Exit 2 (``parser.error``) when ``--out`` names an existing file: a report never replaces one."""
    if out is not None and out.exists():
        parser.error(f"--out {out} exists")


def load_checkpoint_model(parser: argparse.ArgumentParser, path: Path):
    """``(model, config)`` of a `pan train` checkpoint on the CPU, in eval mode, eager backend; exit 2 naming the
    file when it cannot be read."""
    from pan.train.checkpoint import CheckpointError, load_model

    try:
        return load_model(path, backend="torch")
    except CheckpointError as err:
        parser.error(f"checkpoint: {err}")


def emit_report(result: dict, out: Path | None) -> None:
    """Print ``result`` as indented JSON and write the same text to ``out`` when given."""
    text = json.dumps(result, indent=1)
    print(text)
    if out is not None:
        out.write_text(text + "\n")
