"""Warm start (``TrainConfig.init_from``): a new run begins from the model weights of an earlier ``pan train``
checkpoint instead of a random initialisation; its optimiser state, lr schedule, epochs and early stopping start
afresh."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from pan.train.checkpoint import CheckpointError, load_checkpoint

__all__ = ["chain_images", "images_behind", "images_per_epoch", "load_init_weights", "warm_start_chain"]

_MAX_CHAIN = 16  # warm starts followed before giving up (a chain that loops back on itself)


def images_per_epoch(num_train: int, batch_size: int) -> int:
    """Training images one epoch sees: ``num_train`` examples in whole batches (the last partial batch is dropped)."""
    return (num_train // batch_size) * batch_size


def _find(path: str, base: Path) -> Path | None:
    """``path`` as given (relative to the working directory), else relative to ``base`` or one of its parents: a
    run's config records ``init_from`` as typed where the run was started."""
    candidates = [Path(path)] + [parent / path for parent in [base, *base.resolve().parents]]
    return next((c for c in candidates if c.is_file()), None)


def warm_start_chain(config: dict, base: str | os.PathLike) -> tuple[list[dict], str | None]:
    """The checkpoints behind a run's ``init_from``, nearest first, as ``{"path", "epoch", "config"}``, and the
    first ``init_from`` of the chain that cannot be found (looked for as `_find` says, from ``base``), else None.
    A run from scratch: ``([], None)``."""
    chain, base = [], Path(base)
    for _ in range(_MAX_CHAIN):
        init = config.get("init_from")
        if not init:
            return chain, None
        found = _find(init, base)
        if found is None:
            return chain, init
        ckpt = load_checkpoint(found)
        config = ckpt["config"]
        chain.append({"path": found, "epoch": ckpt["state"]["epoch"], "config": config})
    raise CheckpointError(f"{base}: more than {_MAX_CHAIN} warm starts behind this run (a chain that loops?)")


def images_behind(config: dict, base: str | os.PathLike) -> tuple[int, str | None]:
    """Training images behind a run's warm start: each checkpoint of `warm_start_chain` contributes its epochs x
    images per epoch; ``(0, None)`` for a run from scratch. The second item is the chain's missing checkpoint (the
    count stops there), else None."""
    chain, missing = warm_start_chain(config, base)
    return chain_images(chain), missing


def chain_images(chain: list[dict]) -> int:
    """Training images of the checkpoints of a `warm_start_chain`: each one's epochs x images per epoch."""
    return sum(c["epoch"] * images_per_epoch(c["config"]["num_train"], c["config"]["batch_size"]) for c in chain)


def load_init_weights(model: nn.Module, path: str | os.PathLike, model_name: str, head_dropout: float) -> None:
    """Copy the weights of checkpoint ``path`` into ``model`` (a fresh ``model_name`` with ``head_dropout``). Raises
    ``CheckpointError`` naming the file when it is not a checkpoint of that model (another model, another head, or
    weights that do not fit)."""
    ckpt = load_checkpoint(path)
    saved = ckpt.get("config") or {}
    if saved.get("kind") == "real-images":
        raise CheckpointError(f"{path} holds a {saved.get('dataset')} (real-image) model; a warm start needs a "
                              f"{model_name} checkpoint of an MREF / MDIST / MBG run")
    saved_model, saved_dropout = saved.get("model"), float(saved.get("head_dropout") or 0.0)
    if saved_model != model_name or saved_dropout != float(head_dropout):
        raise CheckpointError(f"{path} holds a {saved_model} model (head dropout {saved_dropout:g}); this run trains "
                              f"a {model_name} model (head dropout {float(head_dropout):g})")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(f"{path}: its weights do not fit a {model_name} model "
                              f"({first[1].strip() if len(first) > 1 else first[0]})") from err
