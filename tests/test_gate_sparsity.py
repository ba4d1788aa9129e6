"""The gate terms (`pan.train.regularizers`: L1 and focus, the `demo` recipe's): their values, their gradients, where
`train_step` adds them, and when the training loop turns them on."""

from __future__ import annotations

import math

import pytest
import torch

from pan.models import build_model
from pan.train import TrainConfig, load_model, train
from pan.train.config import RESUME_FIELDS
from pan.train.recipes import RECIPES
from pan.train.regularizers import gate_focus, gate_sparsity, gate_term, per_gate_weights
from pan.train.step import train_step
from tests.test_train_support import synthetic_dataset


def test_values_are_the_mean_gate_value_summed_over_gates():
    g = torch.Generator().manual_seed(0)
    maps = [torch.rand(4, 6, 6, generator=g), torch.rand(4, 3, 5, generator=g).to(torch.bfloat16)]
    want = sum(m.double().mean().item() for m in maps)
    assert gate_sparsity(maps).dtype == torch.float32
    assert gate_sparsity(maps).item() == pytest.approx(want, rel=1e-6)
    assert gate_sparsity([torch.full((2, 7, 5), 0.37)]).item() == pytest.approx(0.37)
    assert gate_sparsity([]).item() == 0.0


def test_gradient_pulls_every_location_down_equally():
    alpha = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(1)).requires_grad_()
    gate_sparsity([alpha]).backward()
    torch.testing.assert_close(alpha.grad, torch.full_like(alpha, 1 / 50))


def _strokes(seed: int = 2):
    """Gate inputs [2, 4, 6, 6] that are 0 on a 'background' and random where a 'stroke' mask [2, 6, 6] is set."""
    g = torch.Generator().manual_seed(seed)
    stroke = torch.rand(2, 6, 6, generator=g) < 0.3
    x = torch.rand(2, 4, 6, 6, generator=g) * stroke[:, None]
    return x, stroke


def test_focus_is_one_for_flat_gates_at_any_level_and_falls_on_strong_features():
    x, stroke = _strokes()
    for level in (0.05, 0.5, 0.99):
        assert gate_focus([torch.full((2, 6, 6), level)], [x]).item() == pytest.approx(1.0, rel=1e-5)
    g = torch.Generator().manual_seed(3)
    alpha = torch.rand(2, 6, 6, generator=g) * 0.5 + 0.25
    on_strokes = torch.where(stroke, alpha, alpha * 0.1)
    on_background = torch.where(stroke, alpha * 0.1, alpha)
    assert gate_focus([on_strokes], [x]) < 0.5 < 1.0 < gate_focus([on_background], [x])
    # blind to the level: scaling the gate changes nothing
    torch.testing.assert_close(gate_focus([0.3 * on_strokes], [x]), gate_focus([on_strokes], [x]))
    # per image: mean alpha / mean(alpha * e), e = channel norm over its image mean, averaged over images
    e = x.double().norm(dim=1).flatten(1)
    e = e / e.mean(1, keepdim=True)
    a = on_strokes.double().flatten(1)
    want = (a.mean(1) / (a * e).mean(1)).mean().item()
    assert gate_focus([on_strokes], [x]).item() == pytest.approx(want, rel=1e-5)
    assert gate_term("focus", [on_strokes, alpha], [x, x]).item() == pytest.approx(
        gate_focus([on_strokes], [x]).item() + gate_focus([alpha], [x]).item(), rel=1e-6)


def test_focus_gradient_moves_gate_mass_from_background_to_strokes_and_not_into_the_features():
    x, stroke = _strokes()
    x.requires_grad_()
    alpha = torch.full((2, 6, 6), 0.5, requires_grad=True)
    gate_focus([alpha], [x]).backward()
    assert (alpha.grad[~stroke] > 0).all() and (alpha.grad[stroke].mean() < 0)  # descent opens strokes, closes bg
    assert x.grad is None  # e is detached: the term does not push the features
    with pytest.raises(ValueError, match="gate maps but"):
        gate_focus([alpha], [])
    with pytest.raises(ValueError, match="does not match"):
        gate_focus([alpha], [x[:, :, :5]])
    with pytest.raises(ValueError, match="kind must be one of"):
        gate_term("l2", [alpha])


def test_models_hand_out_the_features_each_gate_multiplies():
    images, query, _ = _batch()
    out = build_model("pan-h-ctx", backend="torch").eval()(images, query)
    assert len(out.gate_inputs) == 3
    for x, alpha in zip(out.gate_inputs, out.attention):
        assert x.shape[0] == alpha.shape[0] and x.shape[2:] == alpha.shape[1:] and x.shape[1] == 32
    assert build_model("san", backend="torch").eval()(images, query).gate_inputs == ()


def _batch(n: int = 4):
    data = synthetic_dataset(n, seed=3)
    images = torch.from_numpy(data.images[data.image_index]).permute(0, 3, 1, 2).float().div(255)
    return images, torch.from_numpy(data.query), torch.from_numpy(data.answer)


def _step_grads(model_name: str, weight: float, kind: str = "l1"):
    torch.manual_seed(0)
    model = build_model(model_name, backend="torch")
    num_gates = len(getattr(model, "gates", ()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss, _, _ = train_step(model, optimizer, *_batch(), clip_norm=None, gate_sparsity=weight, num_gates=num_gates,
                            gate_kind=kind)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kind", ["l1", "focus"])
def test_train_step_adds_it_for_pan_gates_only(kind):
    loss0, plain = _step_grads("pan-h-ctx", 0.0)
    loss1, sparse = _step_grads("pan-h-ctx", 0.1, kind)
    assert loss1.item() == pytest.approx(loss0.item())  # the returned loss stays the answer's NLL
    moved = [n for n in plain if not torch.allclose(plain[n], sparse[n])]
    assert any(n.startswith("gates.") for n in moved)
    assert not any(n.startswith("head.") for n in moved)  # the head does not see the gates' values directly
    _, san0 = _step_grads("san", 0.0)
    _, san1 = _step_grads("san", 0.1, kind)
    assert all(torch.equal(san0[n], san1[n]) for n in san0)


def test_config_validates_and_resume_checks_it():
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="gate_sparsity"):
            TrainConfig(gate_sparsity=bad)
    with pytest.raises(ValueError, match="gate_sparsity_start"):
        TrainConfig(gate_sparsity_start=-1)
    with pytest.raises(ValueError, match="gate_sparsity_kind"):
        TrainConfig(gate_sparsity_kind="l2")
    assert {"gate_sparsity", "gate_sparsity_start", "gate_sparsity_kind"} <= set(RESUME_FIELDS)
    assert RECIPES["paper"].get("gate_sparsity", 0.0) == 0.0 and RECIPES["cpu"].get("gate_sparsity", 0.0) == 0.0
    assert RECIPES["demo"]["gate_sparsity"] > 0


def test_per_gate_weights_scale_each_gate_term():
    g = torch.Generator().manual_seed(4)
    maps = [torch.rand(2, 6, 6, generator=g), torch.rand(2, 3, 3, generator=g)]
    inputs = [torch.rand(2, 4, 6, 6, generator=g), torch.rand(2, 4, 3, 3, generator=g)]
    for kind in ("l1", "focus"):
        first = gate_term(kind, maps[:1], inputs[:1]).item()
        second = gate_term(kind, maps[1:], inputs[1:]).item()
        got = gate_term(kind, maps, inputs, weights=[0.3, 0.1]).item()
        assert got == pytest.approx(0.3 * first + 0.1 * second, rel=1e-6)
        assert gate_term(kind, maps, inputs, weights=[0.0, 2.0]).item() == pytest.approx(2 * second, rel=1e-6)
        with pytest.raises(ValueError, match="weights"):
            gate_term(kind, maps, inputs, weights=[1.0])
    assert per_gate_weights(0.3, 3) == [0.3, 0.3, 0.3]
    assert per_gate_weights([0.3, 0.1, 0.0], 3) == [0.3, 0.1, 0.0]
    with pytest.raises(ValueError, match="gate_sparsity has 2 per-gate weights but the model has 3 gates"):
        per_gate_weights([0.3, 0.1], 3)


def test_train_step_with_per_gate_weights_moves_only_the_weighted_gates():
    """Weight on the first gate only: the other gates' own parameters (query embeddings, convs) get the NLL's
    gradient alone, as with no term; the first gate's differ."""
    _, plain = _step_grads("pan-h-ctx", 0.0, "focus")
    _, first = _step_grads("pan-h-ctx", [0.3, 0.0, 0.0], "focus")
    _, uniform = _step_grads("pan-h-ctx", 0.3, "focus")
    assert any(not torch.allclose(plain[n], first[n]) for n in plain if n.startswith("gates.0."))
    # gate 1's map depends on stage 1 and gate 1 only: a term on it leaves gate 3's gradient to the NLL
    gate3 = [n for n in plain if n.startswith("gates.2.")]
    assert gate3 and all(torch.allclose(plain[n], first[n]) for n in gate3)
    assert any(not torch.allclose(plain[n], uniform[n]) for n in gate3)


def test_config_takes_a_list_of_per_gate_weights_and_the_cli_parses_it():
    from pan.cli.argtypes import gate_weights

    config = TrainConfig(gate_sparsity=(0.3, 0.1, 0.1))
    assert config.gate_sparsity == [0.3, 0.1, 0.1]
    assert TrainConfig.from_dict(config.to_dict()).gate_sparsity == [0.3, 0.1, 0.1]
    for bad in ([], [0.1, -0.1], [0.1, math.nan], ["0.1"], [True]):
        with pytest.raises(ValueError, match="gate_sparsity"):
            TrainConfig(gate_sparsity=bad)
    assert gate_weights("0.3") == 0.3 and gate_weights("0.3, 0.1,0") == [0.3, 0.1, 0.0]
    import argparse

    for bad in ("0.3,-1", "0.3,,0.1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            gate_weights(bad)


def test_training_refuses_per_gate_weights_that_do_not_match_the_model(tmp_path):
    data, val = synthetic_dataset(16, seed=0), synthetic_dataset(8, seed=1)
    config = TrainConfig(model="pan-h-ctx", num_train=16, num_val=8, batch_size=8, max_epochs=1, backend="torch",
                         device="cpu", out_dir=str(tmp_path / "run"), quiet=True, gate_sparsity=[0.3, 0.1])
    with pytest.raises(ValueError, match="2 per-gate weights but the model has 3 gates"):
        train(config, train_data=data, val_data=val)


def test_loop_turns_it_on_after_the_start_epoch(tmp_path):
    """One epoch with the term starting after epoch 1 trains exactly as without it; starting at once, not."""
    data, val = synthetic_dataset(48, seed=0), synthetic_dataset(16, seed=1)

    def weights(name: str, **kw) -> dict:
        config = TrainConfig(model="pan-h-ctx", num_train=48, num_val=16, optimizer="adam", batch_size=16,
                             max_epochs=1, backend="torch", device="cpu", out_dir=str(tmp_path / name), quiet=True,
                             **kw)
        train(config, train_data=data, val_data=val)
        model, _ = load_model(tmp_path / name / "last.pt", backend="torch")
        return model.state_dict()

    plain = weights("plain")
    later = weights("later", gate_sparsity=0.5, gate_sparsity_start=1)
    now = weights("now", gate_sparsity=0.5, gate_sparsity_start=0)
    assert all(torch.equal(plain[k], later[k]) for k in plain)
    assert any(not torch.equal(plain[k], now[k]) for k in plain if k.startswith("gates."))
