"""Named training recipes: the settings a `pan train --recipe NAME` / `pan demo` run starts from.

- ``paper``: the paper's schedule (docs/design.md, Training), `TrainConfig`'s defaults: RMSprop lr 1e-3, batch 200,
  clip 5, lr x0.9 every 30 epochs after 50, early stopping after 50 epochs without improvement, 30K / 10K examples.
  A GPU run.
- ``cpu``: what a 2-core CPU can show in 5.5-14.5 minutes per attention CNN (CPU Table 1; docs/training-notes.md
  measures why each setting is there): Adam lr 1e-3 at batch 32 (leaves the query-blind plateau in ~2K steps, RMSprop
  at batch 200 needs far more images), channels-last (NHWC convolutions) and bf16 autocast where the CPU runs bf16
  natively ("auto": faster on AVX-512 BF16 cores, 6-9x slower on AVX2-only ones; `pan.train.precision`), 9 epochs of
  30K examples with the lr annealed over the last four (x0.7 per epoch), 1K validation examples.
  CPU Table 1 was trained with it (on a host with native bf16).
- ``demo``: ``cpu`` plus the focus term on PAN's gates (`pan.train.regularizers.gate_focus`, weight 0.3) from
  epoch 4 on, once the model has left the query-blind plateau. Without a term the gates stay open over the black
  background, where the features are 0 and the loss cannot train them, so attention spreads (TPR ~6%); the focus
  term moves each gate's mass onto strong features, so the first gate learns the strokes and TPR passes 30% after
  ~200K images, at a cost of a few points of accuracy at the same budget (docs/training-notes.md §8-9). `pan demo`
  uses it, with its epochs fitted to a wall-clock budget (`pan.train.budget`).
- ``demo-long``: an hour on 2 CPU cores to the demo's goal (docs/training-notes.md §10; the checkpoint shipped
  for ``pan demo --pretrained`` before the converged one of §16): ``demo`` on 60K examples for 10 epochs (600K
  images; lr annealed after epoch 7), the focus term from epoch 3 at weight 0.3 on the first gate and 0.1 on the
  other two (the first gate learns the strokes at no cost in accuracy; the full weight on all three costs a few
  points, §9).
- ``converge``: the run to convergence on the paper's data (30K train / 10K val), for a CPU: ``cpu``'s optimiser
  (Adam lr 1e-3, batch 32, clip 5, channels-last, bf16 where native) with the paper's loss (no gate term), at most
  200 epochs, early stopping after 20 epochs without a better validation accuracy, the lr x0.7 every 5 epochs after
  epoch 20 (the authors' code divides by 1.5 about every 11 epochs after 30 at batch 200; Adam at batch 32 takes
  ~6x the steps per epoch, so the decay comes sooner). docs/training-notes.md §12.
- ``authors``: the schedule of the authors' training script (hworang77/PAN, ``train.py``, its defaults) where it
  differs from the paper's text: RMSprop lr 0.003 with decay rate 0.9 (Lasagne's ``rho``; torch's ``alpha``),
  batch 200, clip 5, at most 300 epochs, early stopping after 50 epochs without improvement, the lr divided by 1.5
  after epoch 32 and every 12 epochs after that (the script's ``-nodecay 30 -decayinterval 10 -decayfac 1.5``
  counter fires at 0-based epochs 31, 43, 55, ...). Lasagne adds its epsilon 1e-6 inside the square root,
  torch outside: eps 1e-3 gives the same step where the squared-gradient average is near 0 and the same
  step wherever it is large. The script's head (average pool, batch-norm, dropout 0.5, dense) is a model
  difference, not a recipe setting (docs/training-notes.md §12).
"""

from __future__ import annotations

__all__ = ["RECIPES", "matching_recipe", "recipe_settings"]

RECIPES: dict[str, dict] = {
    "paper": {},
    "cpu": {
        "optimizer": "adam", "lr": 1e-3, "batch_size": 32, "clip_norm": 5.0, "amp": "auto", "channels_last": True,
        "num_train": 30_000, "num_val": 1_000, "max_epochs": 9, "patience": 9,
        "decay_start": 5, "decay_every": 1, "decay_factor": 0.7,
    },
}
RECIPES["demo"] = {**RECIPES["cpu"], "gate_sparsity": 0.3, "gate_sparsity_kind": "focus", "gate_sparsity_start": 3}
RECIPES["demo-long"] = {**RECIPES["demo"], "num_train": 60_000, "max_epochs": 10, "decay_start": 7,
                        "gate_sparsity": [0.3, 0.1, 0.1], "gate_sparsity_start": 2}
RECIPES["authors"] = {"optimizer": "rmsprop", "lr": 0.003, "rmsprop_alpha": 0.9, "rmsprop_eps": 1e-3,
                      "batch_size": 200, "clip_norm": 5.0, "max_epochs": 300, "patience": 50,
                      "num_train": 30_000, "num_val": 10_000, "decay_start": 32, "decay_every": 12,
                      "decay_factor": 1 / 1.5}
RECIPES["converge"] = {**RECIPES["cpu"], "num_val": 10_000, "max_epochs": 200, "patience": 20,
                       "decay_start": 20, "decay_every": 5, "decay_factor": 0.7}


def recipe_settings(name: str) -> dict:
    """The TrainConfig fields recipe ``name`` sets (a copy); ``ValueError`` naming the recipes for an unknown one."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def matching_recipe(config: dict) -> str | None:
    """The recipe whose settings a run's config (``TrainConfig`` fields as a dict) has, whatever ``--recipe`` it
    named: a run made with ``--recipe demo`` plus flags that equal ``demo-long`` matches ``demo-long``. A recipe's
    ``amp="auto"`` matches either resolved choice. Of several matches the one that sets the most fields; ``None``
    if no recipe with settings matches (the paper's recipe sets none: it is the defaults)."""

    def matches(settings: dict) -> bool:
        return all(config.get(k) == v or (k == "amp" and v == "auto") for k, v in settings.items())

    found = [name for name, settings in RECIPES.items() if settings and matches(settings)]
    return max(found, key=lambda name: len(RECIPES[name]), default=None)
