"""The PAN model family and the paper's baselines (docs/design.md, The model family), by CLI name.

    model = build_model("pan-h-ctx", backend="triton")
    out = model(images [B, 3, 100, 100] float in [0, 1], query [B] int64)   # ModelOutput(log_probs, attention)

`model.attention_geometry[i]` says where `out.attention[i]` lies in image space (pan.models.backbone.Geometry).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from pan.models.attention_cnn import AttentionCNN, check_dropout_probability
from pan.models.backbone import IMAGE_GEOMETRY, IMAGE_SIZE, STAGE_GEOMETRY, Geometry
from pan.models.outputs import ModelOutput
from pan.models.stn import STN
from pan.models.uniform import Uniform

__all__ = ["MODEL_NAMES", "HEAD_DROPOUT_MODELS", "PAPER_NAMES", "build_model", "check_head_dropout", "ModelOutput",
           "Geometry",
           "IMAGE_GEOMETRY", "IMAGE_SIZE",
           "STAGE_GEOMETRY"]

_BUILDERS = {
    "uniform": Uniform,
    "stn-s": partial(STN, multi=False),
    "stn-m": partial(STN, multi=True),
    "san": partial(AttentionCNN, (), 0, "soft"),
    "han": partial(AttentionCNN, (), 0, "hard"),
    "pan-s": partial(AttentionCNN, (0, 1, 2), 0, "soft"),
    "pan-h": partial(AttentionCNN, (0, 1, 2), 0, "hard"),
    "pan-s-ctx": partial(AttentionCNN, (0, 1, 2), 1, "soft"),
    "pan-h-ctx": partial(AttentionCNN, (0, 1, 2), 1, "hard"),
}
MODEL_NAMES = tuple(_BUILDERS)
PAPER_NAMES = {
    "uniform": "Uniform", "stn-s": "STN-S", "stn-m": "STN-M", "san": "SAN", "han": "HAN", "pan-s": "PAN[S]",
    "pan-h": "PAN[H]", "pan-s-ctx": "PAN[S]+CTX", "pan-h-ctx": "PAN[H]+CTX",
}


#: Models with the attention CNN's classifier head (the ones ``head_dropout`` applies to)
HEAD_DROPOUT_MODELS = ("san", "han", "pan-s", "pan-h", "pan-s-ctx", "pan-h-ctx")


def check_head_dropout(name: str, p: object) -> float:
    """``p`` as a float; ``ValueError`` unless it is in [0, 1) and, when > 0, ``name`` is an attention CNN."""
    p = check_dropout_probability(p)
    if p and name not in HEAD_DROPOUT_MODELS:
        raise ValueError(f"head_dropout applies to {', '.join(HEAD_DROPOUT_MODELS)}, not to model {name!r}")
    return p


def build_model(name: str, *, backend: str = "auto", num_queries: int = 10, num_classes: int = 5,
                head_dropout: float = 0.0) -> nn.Module:
    """A fresh model by CLI name (one of MODEL_NAMES); `backend` selects the pan_kernels backend of its attention;
    `head_dropout` > 0 adds batch-norm + dropout before an attention CNN's classifier (pan.models.attention_cnn)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    extra = {"head_dropout": head_dropout} if check_head_dropout(name, head_dropout) else {}
    return _BUILDERS[name](backend=backend, num_queries=num_queries, num_classes=num_classes, **extra)
