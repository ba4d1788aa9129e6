"""Does a multi-label model use its query? On a VisualGenome split: the model's weighted mAP and TPR, next to the
attribute-prior baseline (pan.evaluation.attribute_prior), uniform attention's TPR, and the model asked about another
object of the same image (pan.evaluation.real_images.wrong_queries) but scored against the true object's attributes
and box. A model that looks where the query says beats the prior by far, and falls back to about it (or below) when
the query names another object.

    report = query_check(model, train_reader, reader, image_size=64)
    report == {"weighted_map", "map", "tpr", "prior_weighted_map", "uniform_tpr", "swapped_weighted_map",
               "swapped_tpr", "examples", "swapped_examples"}
"""

from __future__ import annotations

import numpy as np

from pan.evaluation.attribute_prior import evaluate_attribute_prior
from pan.evaluation.real_images import QueryOverride, evaluate_multilabel, uniform_box_tpr, wrong_queries


def query_check(model, train_reader, reader, *, image_size: int, dataset=None, batch_size: int = 64,
                device="cpu") -> dict:
    """The report above; `dataset` (default VisualGenomeImages(reader, image_size)) gives the items of `reader`."""
    if dataset is None:
        from pan.data.real_images import VisualGenomeImages

        dataset = VisualGenomeImages(reader, size=image_size)
    ours = evaluate_multilabel(model, dataset, batch_size=batch_size, device=device)
    wrong = wrong_queries(reader)
    kept = np.flatnonzero(wrong >= 0)
    swapped = evaluate_multilabel(model, QueryOverride(dataset, kept, wrong[kept]), batch_size=batch_size,
                                  device=device)
    return {"weighted_map": ours["weighted_map"], "map": ours["map"], "tpr": ours["tpr"],
            "prior_weighted_map": evaluate_attribute_prior(train_reader, reader)["weighted_map"],
            "uniform_tpr": uniform_box_tpr(reader, image_size), "swapped_weighted_map": swapped["weighted_map"],
            "swapped_tpr": swapped["tpr"], "examples": len(dataset), "swapped_examples": int(len(kept))}
