"""The attribute-prior baseline of the Visual Genome setting: every attribute scored by how often the queried object
class carries it in the training split, without looking at the image.

    prior = attribute_prior(train_reader)                 # [Q, A]: P(attribute a | class q) in training
    result = evaluate_attribute_prior(train_reader, reader)   # weighted_map of those scores on `reader`

prior[q, a] = n(q, a) / n(q), where n(q) counts the training examples of class q and n(q, a) those of them with
attribute a; a class without training example gets the attribute frequencies over all classes. Every example of
one class gets the same scores, so within a class the ranking is a tie, broken by example order (as any constant
score would be).
"""

from __future__ import annotations

import numpy as np

from pan.evaluation.average_precision import weighted_map


def attribute_prior(train_reader) -> np.ndarray:
    """[Q, A] float64: P(attribute | queried class) over the examples of `train_reader` (a VisualGenome split)."""
    labels = train_reader.targets().astype(np.float64)
    queries = np.asarray(train_reader.queries)
    num_classes = len(train_reader.classes)
    counts = np.zeros((num_classes, labels.shape[1]))
    np.add.at(counts, queries, labels)
    per_class = np.bincount(queries, minlength=num_classes)[:, None]
    overall = labels.mean(0) if len(labels) else np.zeros(labels.shape[1])
    return np.where(per_class > 0, counts / np.maximum(per_class, 1), overall[None, :])


def evaluate_attribute_prior(train_reader, reader) -> dict:
    """weighted_map's result for the prior's scores on the examples of `reader` (same vocabularies)."""
    if train_reader.attributes != reader.attributes or train_reader.classes != reader.classes:
        raise ValueError("the training and evaluated splits must share their class and attribute vocabularies")
    scores = attribute_prior(train_reader)[np.asarray(reader.queries)]
    return weighted_map(scores, reader.targets())
