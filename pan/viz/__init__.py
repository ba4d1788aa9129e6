"""Figures: paper Fig. 1/6-style attention panels."""

from pan.viz.figures import attention_figure, distinct_image_examples

__all__ = ["attention_figure", "distinct_image_examples"]
