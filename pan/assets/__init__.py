"""Files shipped with the package.

``DEMO_CHECKPOINT``: PAN[H]+CTX trained on MREF by ``pan train --recipe demo-long --out runs/demo-long`` (the
``demo`` recipe for longer, on 60K examples; its provenance, test numbers and the exact command are in the file's
``provenance`` entry and in docs/training-notes.md). Model weights and config only (no optimiser state); ``pan demo
--pretrained`` evaluates and draws it in seconds. ``scripts/ship_checkpoint.py`` makes such a file from a run.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEMO_CHECKPOINT"]

DEMO_CHECKPOINT = Path(__file__).with_name("demo_pan-h-ctx_mref.pt")
