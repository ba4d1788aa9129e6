"""Warm start (``TrainConfig.init_from``): a new run begins from the model weights of an earlier ``pan train``
checkpoint instead of a random initialisation; its optimiser state, lr schedule, epochs and early stopping start
afresh."""

from __future__ import annotations

import os

from torch import nn

from pan.train.checkpoint import CheckpointError, load_checkpoint

__all__ = ["load_init_weights"]


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
