"""Attention panels of a real-image (VGG-16) model: per example the image with the target's box or mask, each
attention layer (bilinear over its cell centres) and the combined attention whose mass on the target is the TPR;
Visual Genome rows also list the true and the top predicted attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pan.data.real_images import IMAGENET_MEAN, IMAGENET_STD
from pan.evaluation.real_images import cell_geometries
from pan.evaluation.tpr import image_attention
from pan.viz.figures import draw_attention_panels, save_figure, upsample_to_image


@torch.no_grad()
def real_attention_figure(model: nn.Module, dataset, indices, path: str | Path, *, query_names, attribute_names=None,
                          device="cpu", title: str = "", top: int = 3) -> Path:
    """dataset: VisualGenomeImages (image, query, target, mask) or VOCImages (image, query, mask) items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    items = [dataset[i] for i in indices]
    images = torch.stack([it[0] for it in items]).to(device)
    query = torch.stack([it[1] for it in items]).to(device)
    masks = torch.stack([it[-1] for it in items])
    out = model(images, query)
    size = images.shape[-1]
    geoms = cell_geometries(out.attention, size)
    layers = [upsample_to_image(a, g, size).cpu().numpy() for a, g in zip(out.attention, geoms)]
    combined = image_attention(out.attention, geoms, len(items), device, size=size).cpu().numpy()
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    rgb = (images.cpu() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    cols = 2 + len(layers)
    fig, axes = plt.subplots(len(items), cols, figsize=(2.2 * cols, 2.6 * len(items)), squeeze=False)
    for r, item in enumerate(items):
        axes[r, 0].imshow(rgb[r])
        axes[r, 0].contour(masks[r].numpy().astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
        label = f"q: {query_names[int(item[1])]}"
        if attribute_names is not None and len(item) == 4:
            truth = [attribute_names[a] for a in np.flatnonzero(item[2].numpy())][:top]
            best = out.log_p[r].float().topk(min(top, len(attribute_names))).indices.tolist()
            label += f"\ntrue: {', '.join(truth)}\npred: {', '.join(attribute_names[a] for a in best)}"
        axes[r, 0].set_xlabel(label, fontsize=7)
        draw_attention_panels(axes[r], rgb[r], [layer[r] for layer in layers], combined[r], titles=r == 0)
    return save_figure(fig, axes, path, title)
