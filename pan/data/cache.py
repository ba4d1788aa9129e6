"""On-disk cache of generated datasets.

A file is named by a hash of every generation argument (and the MNIST / background fingerprints and
``FORMAT_VERSION``). Writes go to a temporary file in the same directory followed by ``os.replace``, so a crash never
leaves a half-written file under the final name; a damaged file (truncated, bad zip CRC, wrong metadata) is treated
as a miss, deleted and regenerated.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pan.data.dataset import PanDataset

__all__ = [
    "DEFAULT_CACHE_DIR",
    "default_cache_dir",
    "resolve_cache_dir",
    "cache_key",
    "cache_path",
    "load",
    "store",
    "atomic_save",
    "atomic_write",
]


class _DefaultCacheDir:
    """Sentinel meaning ``$PAN_CACHE_DIR`` if set, else ``~/.cache/pan/data``."""

    def __repr__(self) -> str:
        return "DEFAULT_CACHE_DIR"


DEFAULT_CACHE_DIR = _DefaultCacheDir()


def default_cache_dir() -> Path:
    """``$PAN_CACHE_DIR`` if set, else ``~/.cache/pan/data``."""
    env = os.environ.get("PAN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pan" / "data"


def resolve_cache_dir(cache_dir: object) -> Path | None:
    """``DEFAULT_CACHE_DIR`` -> the default directory, ``None`` -> no caching, a path -> that path."""
    if cache_dir is DEFAULT_CACHE_DIR:
        return default_cache_dir()
    if cache_dir is None:
        return None
    if isinstance(cache_dir, (str, os.PathLike)):
        return Path(cache_dir).expanduser()
    raise TypeError(f"cache_dir must be a path, None or DEFAULT_CACHE_DIR, got {type(cache_dir).__name__}")


def cache_key(params: dict) -> str:
    """Hex digest of the JSON-encoded ``params`` (sorted keys)."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_path(directory: Path, params: dict) -> Path:
    """``<dir>/<name>_<split>_<num_examples>_s<seed>_<hash16>.npz``."""
    stem = f"{params['name']}_{params['split']}_{params['num_examples']}_s{params['seed']}"
    return directory / f"{stem}_{cache_key(params)[:16]}.npz"


def load(path: Path, params: dict) -> PanDataset | None:
    """The cached dataset, or ``None`` if absent or unusable (an unusable file is removed)."""
    if not path.is_file():
        return None
    try:
        dataset = PanDataset.load(path)
        if dataset.meta.get("cache_key") != cache_key(params):
            raise ValueError("cache key mismatch")
    except Exception as err:  # any damage means: regenerate
        warnings.warn(f"ignoring damaged dataset cache file {path} ({type(err).__name__}: {err})", stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return dataset


def store(path: Path, dataset: PanDataset, params: dict) -> None:
    """Write ``dataset`` to the cache (its meta records the cache key), atomically."""
    dataset.meta = {**dataset.meta, "cache_key": cache_key(params)}
    atomic_save(path, dataset)


def atomic_save(path: str | os.PathLike, dataset: PanDataset) -> None:
    """``dataset.save(path)`` via `atomic_write`."""
    atomic_write(path, dataset.save)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """``write(handle)`` into a temp file in ``path``'s directory, fsync, then ``os.replace`` onto ``path``: readers
    see the old file or the whole new one, never a part. The file gets the mode ``open()`` would give (0666 less
    the umask; ``mkstemp`` makes 0600); on any error, Ctrl-C included, the temp file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
