"""Evaluation: accuracy, TPR of attention, accuracy by target scale, and the paper's Table 1."""

from pan.evaluation.metrics import SCALE_BINS, evaluate, scale_bin_index, scale_bin_labels
from pan.evaluation.paper import PAPER_TABLE1, format_table
from pan.evaluation.tpr import image_attention, spread_to_image, true_positive_ratio

__all__ = ["PAPER_TABLE1", "SCALE_BINS", "evaluate", "format_table", "image_attention", "scale_bin_index",
           "scale_bin_labels", "spread_to_image", "true_positive_ratio"]
