"""The named recipes build valid configs, and `authors` follows the authors' script: RMSprop lr 0.003 (decay rate
0.9), the lr divided by 1.5 after 1-based epoch 32 and then every 12 epochs (their 0-based decay counter)."""

import pytest

from pan.train.config import TrainConfig
from pan.train.recipes import RECIPES, matching_recipe, recipe_settings
from pan.train.schedule import lr_at_epoch


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    config = TrainConfig(**recipe_settings(name))
    for field, value in recipe_settings(name).items():
        assert getattr(config, field) == value


def _authors_script_lrs(epochs: int, lr: float = 0.003, nodecay: int = 30, interval: int = 10, fac: float = 1.5):
    """The lr each 0-based epoch trains at, transcribed from the authors' loop (decay after training epoch e)."""
    out, last_decay = [], 0
    for epoch in range(epochs):
        out.append(lr)
        if last_decay > interval and epoch > nodecay:
            last_decay, lr = 0, lr / fac
        else:
            last_decay += 1
    return out


def test_authors_recipe_schedule_matches_the_script():
    c = TrainConfig(**recipe_settings("authors"))
    ours = [lr_at_epoch(e, c.lr, c.decay_start, c.decay_every, c.decay_factor) for e in range(1, 121)]
    assert ours == pytest.approx(_authors_script_lrs(120), rel=1e-12)
    assert (c.optimizer, c.lr, c.rmsprop_alpha, c.batch_size, c.patience, c.max_epochs) == (
        "rmsprop", 0.003, 0.9, 200, 50, 300)


def test_converge_recipe_has_the_paper_loss_and_data():
    c = TrainConfig(**recipe_settings("converge"))
    assert c.gate_sparsity == 0.0 and (c.num_train, c.num_val) == (30_000, 10_000)
    assert matching_recipe(c.to_dict()) == "converge"
