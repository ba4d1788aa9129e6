"""PAN on torchvision backbones: VGG-16 as in the paper's Visual Genome / VOC experiments (§4.2), ResNet-50 as a
second example of attaching progressive attention to a stock CNN.

    model = build_vgg_pan("pan-h-ctx", num_queries=827, num_classes=749, weights="vgg16-397923af.pth")
    out = model(images [B, 3, 224, 224], query [B])            # MultiLabelOutput(log_p, log_1mp, attention)

VGG-16 (torchvision's definition, `torchvision.models.vgg16`): PAN[S]+CTX / PAN[H]+CTX attend after pool3 and pool4
(sigmoid gates) and pool5 (softmax), all with local context delta = 2 (k = 5); SAN / HAN attend once, after pool5;
STN-S / STN-M put query-conditioned spatial transformers in front (pan.models.torchvision_stn). The backbones,
their stages and the weight loader live in pan.models.torchvision_backbones (re-exported here).
ImageNet weights load from a local file only (a torchvision state dict); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pan.models.attach import AttachedPAN
from pan.models.torchvision_backbones import (  # noqa: F401 — re-exported: the stages and loader belong to this API
    RESNET50_CHANNELS,
    VGG_CHANNELS,
    load_backbone_weights,
    resnet50_backbone,
    resnet50_stages,
    vgg16_backbone,
    vgg16_stages,
)
from pan.models.torchvision_stn import VGGSTN

# name -> (gated stages, head, context); the final attention sits on the last stage
VGG_MODELS = {
    "san": ((), "soft", 0),
    "han": ((), "hard", 0),
    "pan-s-ctx": (("pool3", "pool4"), "soft", 2),
    "pan-h-ctx": (("pool3", "pool4"), "hard", 2),
}
VGG_MODEL_NAMES = ("stn-s", "stn-m", *VGG_MODELS)


def build_vgg_pan(name: str, *, num_queries: int, num_classes: int, multilabel: bool = True, prior: bool = False,
                  weights: str | Path | None = None, backend: str = "auto") -> nn.Module:
    """A VGG-16 model by name (VGG_MODEL_NAMES: STN-S / STN-M, SAN, HAN, PAN[S]+CTX, PAN[H]+CTX) for `num_queries`
    object classes and `num_classes` attributes; `prior` applies to the attention models."""
    if name in ("stn-s", "stn-m"):
        return VGGSTN(name == "stn-m", num_queries=num_queries, num_classes=num_classes, multilabel=multilabel,
                      weights=weights)
    if name not in VGG_MODELS:
        raise ValueError(f"unknown VGG model {name!r}; choose one of {', '.join(VGG_MODEL_NAMES)}")
    vgg = vgg16_backbone(weights)
    gated, head, context = VGG_MODELS[name]
    return AttachedPAN(vgg16_stages(vgg), gated=gated, final="pool5", channels=VGG_CHANNELS, num_queries=num_queries,
                       num_classes=num_classes, head=head, multilabel=multilabel, context=context, prior=prior,
                       backend=backend)


def build_resnet50_pan(*, num_queries: int, num_classes: int, multilabel: bool = True, head: str = "hard",
                       weights: str | Path | None = None, backend: str = "auto") -> AttachedPAN:
    """ResNet-50 with gates after layer2 and layer3 and the softmax attention on layer4 (context 1, hidden 512)."""
    resnet = resnet50_backbone(weights)
    return AttachedPAN(resnet50_stages(resnet), gated=("layer2", "layer3"), final="layer4",
                       channels=RESNET50_CHANNELS, num_queries=num_queries, num_classes=num_classes, head=head,
                       multilabel=multilabel, context=1, hidden=512, backend=backend)
