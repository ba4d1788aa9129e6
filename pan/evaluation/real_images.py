"""Evaluation of real-image PAN models: frequency-weighted attribute mAP (Visual Genome) and TPR of the attention
against object boxes (Visual Genome) or segmentation masks (VOC 2007), with pan.evaluation.tpr's TPR.

Attention maps of VGG-16 sit on grids of stride 8, 16, 32 (pool3..pool5) whose receptive fields cover most of a
224-pixel image, so each location's value is spread over its own stride x stride cell (Geometry(rf=stride)) before
the maps are multiplied; models without attention maps count as uniform attention.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from pan.evaluation.average_precision import weighted_map
from pan.evaluation.tpr import image_attention, true_positive_ratio
from pan.models.backbone import Geometry


def cell_geometries(maps, size: int) -> list[Geometry]:
    """Geometry(stride, stride) of each map [B, h, w] on a size x size image (stride = size // h)."""
    return [Geometry(size // m.shape[-2], size // m.shape[-2]) for m in maps]


def attention_tpr(maps, masks: torch.Tensor) -> torch.Tensor:
    """TPR [B] of the product of the maps (spread over their cells) against masks [B, S, S]."""
    size = masks.shape[-1]
    attention = image_attention([m.float() for m in maps], cell_geometries(maps, size), masks.shape[0],
                                masks.device, size=size)
    return true_positive_ratio(attention, masks)


@torch.no_grad()
def evaluate_multilabel(model, dataset, *, batch_size: int = 32, device="cpu", amp: bool = False,
                        num_workers: int = 0) -> dict:
    """{"weighted_map", "map", "scored", "tpr", "count"} of a multi-label model on (image, query, target, mask)."""
    was_training = model.training
    model.eval()
    scores, labels, tprs = [], [], []
    for images, query, target, masks in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            out = model(images.to(device), query.to(device))
        scores.append(out.log_p.float().cpu().numpy())
        labels.append(target.numpy())
        tprs.append(attention_tpr(out.attention, masks.to(device)).cpu())
    model.train(was_training)
    result = weighted_map(np.concatenate(scores), np.concatenate(labels))
    return {"weighted_map": result["weighted_map"], "map": result["map"], "scored": result["scored"],
            "tpr": torch.cat(tprs).mean().item(), "count": int(sum(len(t) for t in tprs))}


@torch.no_grad()
def evaluate_voc_tpr(model, dataset, *, batch_size: int = 32, device="cpu", amp: bool = False) -> dict:
    """{"tpr", "count"} of a model's attention on (image, query, mask) examples (VOC 2007 segmentation)."""
    model.eval()
    tprs = []
    for images, query, masks in DataLoader(dataset, batch_size=batch_size):
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
            out = model(images.to(device), query.to(device))
        tprs.append(attention_tpr(out.attention, masks.to(device)).cpu())
    values = torch.cat(tprs)
    return {"tpr": values.mean().item(), "count": len(values)}


def uniform_box_tpr(reader, size: int) -> float:
    """TPR of uniform attention on a VisualGenome split at input size `size`: the mean share of the resized image
    that the queried object's box covers."""
    from pan.data.real_images import box_mask

    areas = [box_mask(e.box, (e.width, e.height), size).float().mean().item() for e in reader.examples]
    return float(np.mean(areas)) if areas else float("nan")


def wrong_queries(reader) -> np.ndarray:
    """[N] int64: for each example, the class of the next example of the same image (cyclically) whose class is
    another, i.e. a query about a different object in the same picture; -1 where the image has one class only."""
    image_ids, queries = np.asarray(reader.examples.image_ids), np.asarray(reader.queries)
    out = np.full(len(queries), -1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, image_ids[1:] != image_ids[:-1]])  # examples are grouped by image
    for start, stop in zip(starts, np.r_[starts[1:], len(queries)]):
        group = queries[start:stop]
        for k in range(len(group)):
            others = [q for q in np.roll(group, -k)[1:] if q != group[k]]
            out[start + k] = others[0] if others else -1
    return out


class QueryOverride(torch.utils.data.Dataset):
    """`dataset` (items (image, query, ...)) restricted to `indices`, with the query of item indices[i] replaced by
    queries[i]: the same images and targets, asked about something else."""

    def __init__(self, dataset, indices, queries):
        if len(indices) != len(queries):
            raise ValueError(f"got {len(indices)} indices but {len(queries)} queries")
        self.dataset, self.indices, self.queries = dataset, [int(i) for i in indices], [int(q) for q in queries]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, _, *rest = self.dataset[self.indices[i]]
        return (image, torch.tensor(self.queries[i]), *rest)
