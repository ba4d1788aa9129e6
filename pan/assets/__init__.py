"""Files shipped with the package.

``DEMO_CHECKPOINT``: PAN[H]+CTX trained on MREF to convergence (early stopping) in two runs: the paper's model and
loss with random offsets of up to 8 pixels (``--recipe converge --augment-shift 8``) for 34 epochs, then, from those
weights (``--init-from``), with the focus term on the gates until early stopping; the best checkpoint, 1.68M training
images in all. The exact commands, the training images and the run's summary are in the file's ``provenance`` entry
and in docs/training-notes.md. Model weights and config only (no optimiser state); ``pan demo --pretrained``
evaluates and draws it in seconds. ``scripts/ship_checkpoint.py`` makes such a file from a run."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CHECKPOINT"]

DEMO_CHECKPOINT = Path(__file__).with_name("demo_pan-h-ctx_mref.pt")
