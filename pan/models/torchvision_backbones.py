"""torchvision backbones cut into named stages, and local ImageNet weights: what the VGG-16 / ResNet-50 PANs
(pan.models.torchvision_pan) and STNs (pan.models.torchvision_stn) share.

    stages = vgg16_stages(vgg16_backbone("vgg16-397923af.pth"))   # OrderedDict(pool1=..., ..., pool5=...)

Channels of each stage's output: VGG_CHANNELS, RESNET50_CHANNELS. Weights load from a local file only (a torchvision
state dict); nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

VGG_CHANNELS = {"pool1": 64, "pool2": 128, "pool3": 256, "pool4": 512, "pool5": 512}
RESNET50_CHANNELS = {"stem": 64, "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}


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


def vgg16_backbone(weights: str | Path | None = None) -> nn.Module:
    """torchvision's VGG-16, randomly initialised or loaded from the local state dict `weights`."""
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    if weights is not None:
        load_backbone_weights(vgg, weights)
    return vgg


def resnet50_backbone(weights: str | Path | None = None) -> nn.Module:
    """torchvision's ResNet-50, randomly initialised or loaded from the local state dict `weights`."""
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    if weights is not None:
        load_backbone_weights(resnet, weights)
    return resnet
