"""A small CNN backbone for the attached PAN (pan.models.attach), trained from scratch in CPU minutes: for checking
an install on vg-synth (pan.data.vg_synth) before VGG-16 on Visual Genome.

Four stages of conv 3x3 + BatchNorm + ReLU; block1..block3 end in a 2x2 max-pool, block4 does not:

    block1 [B, 32, S/2, S/2]  block2 [B, 64, S/4, S/4]  block3 [B, 128, S/8, S/8]  block4 [B, 128, S/8, S/8]

As VGG-16's pool3 / pool4 / pool5: PAN[S] / PAN[H] gate block2 and block3 and attend on block4, PAN[S]+CTX /
PAN[H]+CTX do the same with local context 2, SAN / HAN attend once, on block4. On these small maps (8 x 8 at 64 px)
context is nearly the whole map and slows learning several-fold: on vg-synth PAN[H] reaches in 6 epochs what
PAN[H]+CTX had not in 12 (docs/real-images.md), so PAN[H] is the small CNN's model for checking an install.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from pan.models.attach import AttachedPAN

SMALL_CNN_CHANNELS = {"block1": 32, "block2": 64, "block3": 128, "block4": 128}
SMALL_CNN_MODELS = {
    "san": ((), "soft", 0),
    "han": ((), "hard", 0),
    "pan-s": (("block2", "block3"), "soft", 0),
    "pan-h": (("block2", "block3"), "hard", 0),
    "pan-s-ctx": (("block2", "block3"), "soft", 2),
    "pan-h-ctx": (("block2", "block3"), "hard", 2),
}


def small_cnn_stages() -> OrderedDict[str, nn.Module]:
    """OrderedDict(block1=..., ..., block4=...) (see the module doc), freshly initialised."""
    stages, c_in = OrderedDict(), 3
    for k, (name, c) in enumerate(SMALL_CNN_CHANNELS.items()):
        layers = [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        if k < 3:
            layers.append(nn.MaxPool2d(2))
        stages[name] = nn.Sequential(*layers)
        c_in = c
    return stages


def build_small_cnn_pan(name: str, *, num_queries: int, num_classes: int, multilabel: bool = True,
                        prior: bool = False, weights=None, backend: str = "auto") -> AttachedPAN:
    """The model `name` (one of SMALL_CNN_MODELS) on the small CNN; it has no pretrained weights."""
    if weights is not None:
        raise ValueError("--backbone-weights loads VGG-16 weights; --backbone small-cnn always trains from scratch")
    if name not in SMALL_CNN_MODELS:
        raise ValueError(f"model {name!r} is not available on --backbone small-cnn; choose one of "
                         f"{', '.join(SMALL_CNN_MODELS)}")
    gated, head, context = SMALL_CNN_MODELS[name]
    return AttachedPAN(small_cnn_stages(), gated=gated, final="block4", channels=SMALL_CNN_CHANNELS,
                       num_queries=num_queries, num_classes=num_classes, head=head, multilabel=multilabel,
                       context=context, prior=prior, backend=backend)


BACKBONES = ("vgg16", "small-cnn")


def build_backbone_pan(backbone: str, name: str, *, num_queries: int, num_classes: int, prior: bool = False,
                       weights=None, backend: str = "auto"):
    """Model `name` on `backbone` (one of BACKBONES): pan.models.torchvision_pan's VGG-16 or the small CNN."""
    if backbone == "vgg16":
        from pan.models.torchvision_pan import build_vgg_pan

        return build_vgg_pan(name, num_queries=num_queries, num_classes=num_classes, prior=prior, weights=weights,
                             backend=backend)
    if backbone == "small-cnn":
        return build_small_cnn_pan(name, num_queries=num_queries, num_classes=num_classes, prior=prior,
                                   weights=weights, backend=backend)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
