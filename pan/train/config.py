"""`TrainConfig`: every setting of a training run (docs/design.md, Training), validated, JSON-serialisable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from pan.train.precision import check_amp
from pan.train.regularizers import GATE_TERMS

__all__ = ["check_checkpoint_every", "TrainConfig", "RESUME_FIELDS", "COMPILE_MODES", "OPTIMIZERS"]

#: Fields a resumed run must share with its checkpoint: changing any of them changes what is being trained.
RESUME_FIELDS = ("model", "dataset", "num_train", "num_val", "seed", "data_seed", "optimizer", "lr", "batch_size",
                 "clip_norm",
                 "decay_start", "decay_every", "decay_factor", "rmsprop_alpha", "rmsprop_eps", "train_file",
                 "val_file", "gate_sparsity", "gate_sparsity_start", "gate_sparsity_kind", "head_dropout",
                 "augment_shift", "init_from")
OPTIMIZERS = ("rmsprop", "adam")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_DATASETS = ("mref", "mdist", "mbg")


def check_checkpoint_every(value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number of minutes >= 0 (0: checkpoints at epoch ends only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"checkpoint_every must be a number of minutes >= 0 (0: only at epoch ends), got {value!r}")


@dataclass
class TrainConfig:
    """Settings of one training run.

    ``recipe`` names the preset of ``pan.train.recipes`` the run started from (a record; the fields hold the values).

    Model / data: ``model`` (a name of ``pan.models.MODEL_NAMES``; ``head_dropout`` > 0 adds batch-norm + dropout
    before an attention CNN's classifier, as the authors' script, 0.5 there; the paper's text: 0), ``dataset``
    (mref | mdist | mbg), ``num_train`` /
    ``num_val`` examples of the train / val splits, generated with ``data_seed`` (``mnist_dir``, ``cache_dir``,
    ``no_cache`` are passed to ``pan.data.make_dataset``), or read from ``train_file`` / ``val_file`` (``.npz`` files
    written by ``pan data generate`` / ``PanDataset.save``). ``augment_shift`` > 0 moves each training image by a
    random offset of at most that many pixels per axis that keeps all its digits on the canvas
    (`pan.train.augment.random_shift`; not in the paper, which has no augmentation: 0, the default).
    ``init_from``: a checkpoint of ``pan train`` whose model weights start this run instead of a random
    initialisation (a warm start: the same model and head; optimiser state, lr schedule and epochs start afresh;
    ignored on resume, where ``last.pt`` holds the weights).

    Optimisation (paper): ``optimizer`` RMSprop(``lr``, ``rmsprop_alpha``, ``rmsprop_eps``), or "adam"
    (Adam(``lr``), the CPU demo's), on the NLL of the answer, batch
    ``batch_size`` (the last partial batch of an epoch is dropped, so every step has the same shape), gradient-norm
    clipping at ``clip_norm`` (None: off), lr x ``decay_factor`` after epoch ``decay_start`` and every
    ``decay_every`` epochs after that (see ``pan.train.lr_at_epoch``), early stopping when validation accuracy has not
    improved for ``patience`` epochs, at most ``max_epochs`` epochs. ``seed`` sets the initialisation and the batch
    order. ``gate_sparsity`` > 0 adds that weight times a term on the model's sigmoid gates (none in SAN, HAN, the
    STNs, Uniform: the term is 0; a list gives one weight per gate, first gate first) to the loss from epoch
    ``gate_sparsity_start`` + 1 on: ``gate_sparsity_kind``
    "l1" (`pan.train.regularizers.gate_sparsity`, mean gate value) or "focus" (`gate_focus`, the gate's mass on
    strong features; the ``demo`` recipe's). The paper has none.

    Execution: ``device`` ("auto": cuda when available), ``backend`` (pan_kernels backend of the attention layers),
    ``compile`` (torch.compile, ``compile_mode``), ``amp`` (bf16 autocast: True, False, or "auto" = on where the
    device runs bf16 fast, `pan.train.precision`; `train` records the resolved bool), ``channels_last`` (NHWC
    activations: the fast layout for CPU convolutions), ``deterministic`` (deterministic cuDNN
    kernels, for bit-exact resume on GPU), ``eval_batch_size`` (default ``batch_size``).

    Output: ``out_dir`` receives ``metrics.jsonl``, ``last.pt``, ``best.pt``, ``config.json``, ``summary.json``.
    ``resume`` continues from ``out_dir/last.pt``; a new run refuses an ``out_dir`` that already holds one unless
    ``overwrite``. ``quiet`` turns off the progress bar and epoch lines.
    ``stop_after_steps`` (a test hook) stops as if interrupted after that many optimiser steps of this call.
    ``checkpoint_every``: minutes between the checkpoints written inside an epoch (besides the one at every epoch's
    end; 0: only those), so a killed run loses at most that much work.
    """

    model: str = "pan-h-ctx"
    recipe: str = "paper"
    dataset: str = "mref"
    num_train: int = 30_000
    num_val: int = 10_000
    seed: int = 0
    data_seed: int = 0
    backend: str = "auto"
    optimizer: str = "rmsprop"
    lr: float = 0.001
    batch_size: int = 200
    max_epochs: int = 1000
    patience: int = 50
    decay_start: int = 50
    decay_every: int = 30
    decay_factor: float = 0.9
    clip_norm: float | None = 5.0
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-8
    gate_sparsity: float | list[float] = 0.0
    gate_sparsity_start: int = 0
    gate_sparsity_kind: str = "l1"
    head_dropout: float = 0.0
    augment_shift: int = 0
    init_from: str | None = None
    compile: bool = False
    compile_mode: str = "default"
    amp: bool | str = False
    channels_last: bool = False
    deterministic: bool = False
    device: str = "auto"
    eval_batch_size: int | None = None
    out_dir: str = "runs/default"
    cache_dir: str | None = None
    no_cache: bool = False
    mnist_dir: str | None = None
    train_file: str | None = None
    val_file: str | None = None
    data_files: dict | None = None  # {"train"|"val": {file, dataset, split, num_examples, seed}}: a record
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False
    log_every: int = 20
    stop_after_steps: int | None = None
    checkpoint_every: float = 10.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message for a setting that cannot work."""
        from pan.models import MODEL_NAMES

        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}")
        if self.dataset not in _DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(_DATASETS)}")
        for name in ("num_train", "num_val", "batch_size", "decay_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "data_seed", "max_epochs", "patience", "decay_start", "gate_sparsity_start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name, low in (("eval_batch_size", 1), ("stop_after_steps", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be None or an integer >= {low}, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        check_checkpoint_every(self.checkpoint_every)
        self._check_head_dropout()
        self._check_augment_shift()
        self._check_gate_sparsity()
        if not (0 < self.decay_factor <= 1):
            raise ValueError(f"decay_factor must be in (0, 1], got {self.decay_factor!r}")
        if self.clip_norm is not None and not (math.isfinite(self.clip_norm) and self.clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or None, got {self.clip_norm!r}")
        if not (0 <= self.rmsprop_alpha < 1) or not self.rmsprop_eps > 0:
            raise ValueError("rmsprop_alpha must be in [0, 1) and rmsprop_eps positive")
        if self.gate_sparsity_kind not in GATE_TERMS:
            raise ValueError(f"gate_sparsity_kind must be one of {', '.join(GATE_TERMS)}, "
                             f"got {self.gate_sparsity_kind!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check_amp(self.amp)
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.backend not in ("auto", "torch", "triton", "cuda"):
            raise ValueError(f"backend must be one of auto, torch, triton, cuda, got {self.backend!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from):
            raise ValueError(f"init_from must be None or a checkpoint path, got {self.init_from!r}")
        if (self.train_file is None) != (self.val_file is None):
            raise ValueError("train_file and val_file go together (give both or neither)")

    def _check_head_dropout(self) -> None:
        from pan.models import check_head_dropout

        self.head_dropout = check_head_dropout(self.model, self.head_dropout)

    def _check_augment_shift(self) -> None:
        value = self.augment_shift
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
            raise ValueError(f"augment_shift must be an integer number of pixels in 0..99, got {value!r}")
        if value and self.dataset == "mbg":
            raise ValueError("augment_shift needs a black background; mbg images are photographs edge to edge, so "
                             "they could not move")

    def model_kwargs(self) -> dict:
        """The ``pan.models.build_model`` options this config sets besides the name (none at their defaults, so
        an older checkpoint's config builds the same model)."""
        return {"head_dropout": self.head_dropout} if self.head_dropout else {}

    def _check_gate_sparsity(self) -> None:
        def weight_ok(w: object) -> bool:
            return isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0

        value = self.gate_sparsity
        if isinstance(value, (list, tuple)) and value and all(weight_ok(w) for w in value):
            self.gate_sparsity = [float(w) for w in value]  # a list, as JSON round-trips it
        elif not weight_ok(value):
            raise ValueError(f"gate_sparsity must be a non-negative number or a non-empty list of them (one per "
                             f"gate), got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A config from ``to_dict`` output; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def resume_mismatches(self, saved: dict) -> list[str]:
        """``"field: saved -> now"`` for each of ``RESUME_FIELDS`` that differs from a checkpoint's config."""
        now = self.to_dict()
        return [f"{k}: {saved.get(k)!r} (checkpoint) != {now[k]!r} (now)" for k in RESUME_FIELDS
                if k in saved and saved[k] != now[k]]
