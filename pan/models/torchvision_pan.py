"""PAN on torchvision backbones: VGG-16 as in the paper's Visual Genome / VOC experiments (§4.2), ResNet-50 as a
second example of attaching progressive attention to a stock CNN.

    model = build_vgg_pan("pan-h-ctx", num_queries=827, num_classes=749, weights="vgg16-397923af.pth")
    out = model(images [B, 3, 224, 224], query [B])            # MultiLabelOutput(log_p, log_1mp, attention)

VGG-16 (torchvision's definition, `torchvision.models.vgg16`): PAN[S]+CTX / PAN[H]+CTX attend after pool3 and pool4
(sigmoid gates) and pool5 (softmax), all with local context delta = 2 (k = 5); SAN / HAN attend once, after pool5;
STN-S / STN-M put query-conditioned spatial transformers in front (pan.models.torchvision_stn).
ImageNet weights load from a local file only (a torchvision state dict); nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from pan.models.attach import AttachedPAN

VGG_CHANNELS = {"pool1": 64, "pool2": 128, "pool3": 256, "pool4": 512, "pool5": 512}
RESNET50_CHANNELS = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}

# name -> (gated stages, head, context); the final attention sits on the last stage
VGG_MODELS = {
    "san": ((), "soft", 0),
    "han": ((), "hard", 0),
    "pan-s-ctx": (("pool3", "pool4"), "soft", 2),
    "pan-h-ctx": (("pool3", "pool4"), "hard", 2),
}
VGG_MODEL_NAMES = ("stn-s", "stn-m", *VGG_MODELS)


def vgg16_stages(vgg: nn.Module) -> OrderedDict[str, nn.Module]:
    """torchvision VGG -> OrderedDict(pool1=..., ..., pool5=...): its `features`, cut after every max-pool."""
    stages, current = OrderedDict(), []
    for layer in vgg.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages[f"pool{len(stages) + 1}"] = nn.Sequential(*current)
            current = []
    return stages


def resnet50_stages(resnet: nn.Module) -> OrderedDict[str, nn.Module]:
    """torchvision ResNet -> OrderedDict(stem, layer1, ..., layer4)."""
    r = resnet
    return OrderedDict(stem=nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool), layer1=r.layer1, layer2=r.layer2,
                       layer3=r.layer3, layer4=r.layer4)


def load_backbone_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local torchvision state dict (e.g. ImageNet vgg16-397923af.pth) into `model`, or raise ValueError naming
    the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--backbone-weights {path}: no such file (weights are never downloaded; give a local copy)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — any unreadable file gets the same clear message
        raise ValueError(f"--backbone-weights {path}: not a readable torch state dict ({type(err).__name__}: "
                         f"{err})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"--backbone-weights {path}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"--backbone-weights {path}: does not fit {type(model).__name__}: "
                         f"{str(err).splitlines()[0]}") from None


def build_vgg_pan(name: str, *, num_queries: int, num_classes: int, multilabel: bool = True, prior: bool = False,
                  weights: str | Path | None = None, backend: str = "auto") -> nn.Module:
    """A VGG-16 model by name (VGG_MODEL_NAMES: STN-S / STN-M, SAN, HAN, PAN[S]+CTX, PAN[H]+CTX) for `num_queries`
    object classes and `num_classes` attributes; `prior` applies to the attention models."""
    import torchvision

    if name in ("stn-s", "stn-m"):
        from pan.models.torchvision_stn import VGGSTN

        return VGGSTN(name == "stn-m", num_queries=num_queries, num_classes=num_classes, multilabel=multilabel,
                      weights=weights)
    if name not in VGG_MODELS:
        raise ValueError(f"unknown VGG model {name!r}; choose one of {', '.join(VGG_MODEL_NAMES)}")
    vgg = torchvision.models.vgg16(weights=None)
    if weights is not None:
        load_backbone_weights(vgg, weights)
    gated, head, context = VGG_MODELS[name]
    return AttachedPAN(vgg16_stages(vgg), gated=gated, final="pool5", channels=VGG_CHANNELS, num_queries=num_queries,
                       num_classes=num_classes, head=head, multilabel=multilabel, context=context, prior=prior,
                       backend=backend)


def build_resnet50_pan(*, num_queries: int, num_classes: int, multilabel: bool = True, head: str = "hard",
                       weights: str | Path | None = None, backend: str = "auto") -> AttachedPAN:
    """ResNet-50 with gates after layer2 and layer3 and the softmax attention on layer4 (context 1, hidden 512)."""
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    if weights is not None:
        load_backbone_weights(resnet, weights)
    return AttachedPAN(resnet50_stages(resnet), gated=("layer2", "layer3"), final="layer4",
                       channels=RESNET50_CHANNELS, num_queries=num_queries, num_classes=num_classes, head=head,
                       multilabel=multilabel, context=1, hidden=512, backend=backend)
