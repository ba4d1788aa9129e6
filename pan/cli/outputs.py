"""Output paths of the `pan` commands: refuse what would lose a user's files, clear a run on --overwrite.

Rules: a file output that already exists, or that is a directory, is refused unless ``--overwrite`` (a directory
never); a run directory that holds anything is refused unless ``--overwrite`` (then every file pan writes into a run
goes, so no stale result survives) or ``--resume``; missing parent directories are created, and a path that cannot
be created is refused. Every refusal is an :class:`OutputError` whose message names the argument.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["OutputError", "RUN_PATTERNS", "check_file", "check_run_dir", "clear_run", "file_mode", "make_parent"]

#: What pan writes into a run directory (train, demo, eval next to a checkpoint, lr-grid sub-runs, temp files).
RUN_PATTERNS = ("config.json", "summary.json", "metrics.jsonl", "last.pt", "best.pt", "best.json", "demo.json",
                "attention.png", "eval*.json", "lr_*", ".*.tmp", "*.tmp")


class OutputError(ValueError):
    """An output path that cannot be used; the message names the argument."""


def _check_parent(path: Path, arg: str) -> None:
    """Refuse ``path`` when its parent cannot be created or written; creates nothing."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"{arg} {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{arg} {path}: {ancestor} is not writable")


def make_parent(path: str | os.PathLike, arg: str = "--out") -> Path:
    """Create the parent directories of an output file checked by :func:`check_file` (call it right before writing,
    so a refused command creates nothing); returns the path."""
    path = Path(path)
    _make_parent(path, arg)
    return path


def _make_parent(path: Path, arg: str) -> None:
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{arg} {path}: {parent} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{arg} {path}: cannot create {parent}: {err.strerror or err}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{arg} {path}: {parent} is not writable")


def check_file(path: str | os.PathLike, arg: str, *, overwrite: bool = False, suffix: str | None = None) -> Path:
    """A usable single-file output: not a directory, ``suffix`` (e.g. ".png") when given, an existing file only with
    ``overwrite``, a parent that exists or can be made (:func:`make_parent`). Creates nothing; returns the path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{arg} {path} is a directory; give a file name" + (f" ending in {suffix}" if suffix else ""))
    if suffix is not None and path.suffix.lower() != suffix:
        raise OutputError(f"{arg} {path}: expected a file name ending in {suffix}")
    if path.exists() and not overwrite:
        raise OutputError(f"{arg} {path} already exists; pass --overwrite to replace it, or choose another {arg}")
    _check_parent(path, arg)
    return path


def _pan_outputs(directory: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in RUN_PATTERNS:
        found.update(directory.glob(pattern))
    return sorted(found)


def check_run_dir(path: str | os.PathLike, arg: str = "--out", *, overwrite: bool = False,
                  resume: bool = False) -> Path:
    """A usable run directory: created when missing; one that holds anything is refused unless ``resume`` or
    ``overwrite``. Clears nothing (call :func:`clear_run` once every other argument is known to be good)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{arg} {path} is a file, not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutputError(f"{arg} {path}: directory is not writable")
        held = sorted(p.name for p in path.iterdir())
        if held and not (resume or overwrite):
            shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
            if not _pan_outputs(path):
                raise OutputError(f"{arg} {path} already holds files pan did not write ({shown}); choose another "
                                  f"{arg}, or pass --overwrite to write the run there anyway (they are kept)")
            raise OutputError(f"{arg} {path} already holds a run ({shown}); pass --overwrite to replace that run, "
                              f"--resume to continue it, or choose another {arg}")
        return path
    _make_parent(path / "x", arg)
    return path


def clear_run(path: str | os.PathLike) -> list[str]:
    """Delete every file pan writes into a run directory (``RUN_PATTERNS``), so nothing of an earlier run survives
    next to the new one; files pan never writes are left alone. Returns the names removed."""
    removed = []
    for item in _pan_outputs(Path(path)):
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item)
        else:
            item.unlink()
        removed.append(item.name)
    return removed


def file_mode() -> int:
    """The mode a new file gets from open(): 0o666 less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
