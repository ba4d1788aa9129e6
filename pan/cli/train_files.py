"""`pan train --train-file/--val-file`: read what a split file holds (its own metadata) before training on it.

A file written by `pan data generate` is an ``.npz`` with the arrays of `pan.data.PanDataset` and ``meta`` (JSON:
name, split, num_examples, seed, ...). :func:`describe_split_file` returns ``{"file", "dataset", "split",
"num_examples", "seed"}`` or raises ``ValueError`` with a one-line message naming the argument.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

__all__ = ["describe_split_file"]

_ARRAYS = ("images", "instances", "image_index", "query", "answer", "target", "scale")


def describe_split_file(path: str, arg: str) -> dict:
    """What ``path`` holds, from its own metadata; ``ValueError("{arg} {path}: ...")`` when it is not a split file."""
    import numpy as np

    from pan.data.constants import DATASETS

    p = Path(path)
    if p.is_dir():
        found = sorted(q.name for q in p.glob("*.npz"))
        hint = f" (it holds {', '.join(found[:3])})" if found else ""
        raise ValueError(f"{arg} {path} is a directory; give the .npz file `pan data generate` wrote{hint}")
    if not p.is_file():
        raise ValueError(f"{arg} {path}: no such file")
    if p.stat().st_size == 0:
        raise ValueError(f"{arg} {path} is empty")
    try:
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in (*_ARRAYS, "meta") if k not in data.files]
            if missing:
                raise ValueError(f"{arg} {path}: not a dataset file of `pan data generate` (no {', '.join(missing)})")
            meta = json.loads(str(data["meta"]))
            num = int(data["query"].shape[0])
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ValueError(f"{arg} {path}: not a readable dataset file (truncated or not an .npz: {err})") from None
    except ValueError as err:
        if str(err).startswith(arg):
            raise
        raise ValueError(f"{arg} {path}: not a readable dataset file ({err})") from None
    name = meta.get("name") if isinstance(meta, dict) else None
    if name not in DATASETS:
        raise ValueError(f"{arg} {path}: its metadata names no dataset of {', '.join(DATASETS)} (got {name!r})")
    return {"file": str(path), "dataset": name, "split": meta.get("split"), "num_examples": num,
            "seed": meta.get("seed")}
