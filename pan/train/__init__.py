"""Training (docs/design.md, Training): ``train(TrainConfig(...)) -> summary dict``, an lr grid, checkpoints and
exact resume.

    from pan.train import TrainConfig, train, lr_grid, load_model
    summary = train(TrainConfig(model="pan-h-ctx", dataset="mref", out_dir="runs/x"))
    model, config = load_model(summary["checkpoint"], device="cuda")

Outputs in ``out_dir``: ``metrics.jsonl`` (one JSON object per epoch), ``last.pt`` (every epoch, every
``checkpoint_every`` minutes and on interruption), ``best.pt`` (best validation accuracy), ``config.json``,
``summary.json``; ``lr_grid`` adds ``best.json``. A non-finite loss or gradient norm raises ``TrainingDiverged``.
"""

from pan.train.checkpoint import CheckpointError, ResumeError, atomic_torch_save, load_checkpoint, load_model
from pan.train.config import COMPILE_MODES, RESUME_FIELDS, TrainConfig
from pan.train.data import ResidentData, epoch_permutation, load_datasets
from pan.train.divergence import TrainingDiverged
from pan.train.loop import TIMING_FIELDS
from pan.train.schedule import lr_at_epoch, num_decays
from pan.train.step import evaluate, param_digest, train_step
from pan.train.trainer import lr_grid, train

__all__ = [
    "COMPILE_MODES",
    "CheckpointError",
    "RESUME_FIELDS",
    "TIMING_FIELDS",
    "ResidentData",
    "ResumeError",
    "TrainConfig",
    "TrainingDiverged",
    "atomic_torch_save",
    "epoch_permutation",
    "evaluate",
    "load_checkpoint",
    "load_datasets",
    "load_model",
    "lr_at_epoch",
    "lr_grid",
    "num_decays",
    "param_digest",
    "train",
    "train_step",
]
