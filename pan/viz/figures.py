"""Paper Fig. 1/6-style PNGs: for each example, the input with query/answer/prediction, every attention layer's
map overlaid on the input (bilinear between receptive-field centres), and the combined attention whose mass inside
the queried digit is the TPR (every map spread over its receptive fields, multiplied, normalised)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pan.evaluation.metrics import batch_images
from pan.evaluation.tpr import image_attention
from pan.models.backbone import IMAGE_SIZE, Geometry


def upsample_to_image(values: torch.Tensor, geometry: Geometry, size: int = IMAGE_SIZE) -> torch.Tensor:
    """values [B, h, w] -> [B, size, size]: bilinear over the image, location (i, j) sitting at the centre of its
    receptive field (i*stride + rf/2); pixels outside the centres' hull take the nearest edge value."""
    h, w = values.shape[-2:]
    first = (geometry.rf - 1) / 2  # image coordinate of location 0's centre
    coords = (torch.arange(size, dtype=torch.float32, device=values.device) - first) / geometry.stride
    ys, xs = coords.clamp(0, h - 1), coords.clamp(0, w - 1)
    grid = torch.stack(torch.meshgrid(xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1, indexing="xy"), -1)
    grid = grid.expand(values.shape[0], size, size, 2)
    return torch.nn.functional.grid_sample(values.float()[:, None], grid, mode="bilinear", align_corners=True)[:, 0]


def distinct_image_examples(dataset, n: int) -> list[int]:
    """The first example of each of the first `n` images (consecutive examples often share one image)."""
    _, first = np.unique(np.asarray(dataset.image_index), return_index=True)
    return sorted(first.tolist())[:n]


@torch.no_grad()
def attention_figure(model: nn.Module, dataset, indices, path: str | Path, *, device="cpu", title: str = "") -> Path:
    """Draw one row per example index; returns the written path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pan.data import COLOR_NAMES

    model.eval()
    index = np.asarray(indices, dtype=np.int64)
    images, masks = batch_images(dataset, index, device)
    query = torch.as_tensor(dataset.query[index], device=device, dtype=torch.long)
    out = model(images, query)
    pred = out.log_probs.argmax(-1).cpu().numpy()
    geoms = model.attention_geometry
    layers = [upsample_to_image(a, g).cpu().numpy() for a, g in zip(out.attention, geoms)]
    combined = image_attention(out.attention, geoms, len(index), device).cpu().numpy()
    cols = 2 + len(layers)
    fig, axes = plt.subplots(len(index), cols, figsize=(2.2 * cols, 2.4 * len(index)), squeeze=False)
    rgb = images.permute(0, 2, 3, 1).cpu().numpy()
    for r, i in enumerate(index):
        ok = pred[r] == dataset.answer[i]
        axes[r, 0].imshow(rgb[r])
        axes[r, 0].contour(masks[r].cpu().numpy(), levels=[0.5], colors="cyan", linewidths=0.6)
        axes[r, 0].set_xlabel(f"q: {dataset.query[i]}  a: {COLOR_NAMES[dataset.answer[i]]}\n"
                              f"pred: {COLOR_NAMES[pred[r]]} {'✓' if ok else '✗'}", fontsize=7)
        draw_attention_panels(axes[r], rgb[r], [layer[r] for layer in layers], combined[r], titles=r == 0)
    return save_figure(fig, axes, path, title)


def draw_attention_panels(row, rgb, layers, combined, *, titles: bool) -> None:
    """Columns 1.. of one figure row: each layer's map over the dimmed image, then the combined attention."""
    for c, layer in enumerate(layers):
        row[1 + c].imshow(rgb * 0.35)
        row[1 + c].imshow(layer / max(layer.max(), 1e-12), cmap="inferno", alpha=0.75, vmin=0, vmax=1)
        if titles:
            row[1 + c].set_title(f"attention {c + 1}", fontsize=8)
    row[-1].imshow(combined, cmap="inferno")
    if titles:
        row[-1].set_title("combined", fontsize=8)


def save_figure(fig, axes, path: str | Path, title: str) -> Path:
    """Strip the ticks, add the title, write the PNG (parent folders made), close the figure; returns the path.

    Constrained layout places the title above the column headers and keeps every caption inside the figure, for
    one row as for many; `bbox_inches="tight"` then trims the margins without cutting any text."""
    import matplotlib.pyplot as plt

    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(wrap_title(title, fig, fontsize=9), fontsize=9)
    fig.set_layout_engine("constrained", h_pad=0.04, w_pad=0.04)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return path


def wrap_title(title: str, fig, *, fontsize: float) -> str:
    """`title` broken into lines that fit the figure's width (about 0.55 em per character)."""
    import textwrap

    width = max(20, int(fig.get_figwidth() * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, width) for line in title.splitlines() or [""])
