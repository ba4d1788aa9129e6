"""``head_dropout``: batch-norm + dropout on the pool-4 features the classifier reads (the authors' script's head),
its wiring, its training/eval behaviour, and its place in the config, the checkpoint and resume."""

from __future__ import annotations

import pytest
import torch

from pan.models import HEAD_DROPOUT_MODELS, build_model
from pan.train import RESUME_FIELDS, ResumeError, TrainConfig, train
from pan.train.checkpoint import load_checkpoint, load_model


def _inputs(batch: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 100, 100, generator=g), torch.randint(0, 10, (batch,), generator=g)


def _randomise_norm(model) -> torch.nn.BatchNorm2d:
    bn = model.head_norm[0]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(t.shape, generator=g))
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=g) + 0.5)
    return bn


def _capture(module, store: dict, key: str):
    return module.register_forward_hook(lambda m, args, out: store.__setitem__(key, (args, out)))


@pytest.mark.parametrize("name", ["pan-h-ctx", "san"])
def test_head_reads_normalised_features_scores_read_raw_ones(name):
    """Eval mode: log_probs == head(BN(f), scores(f)) with BN's running statistics, f the pool-4 features."""
    torch.manual_seed(0)
    model = build_model(name, backend="torch", head_dropout=0.5).eval()
    bn = _randomise_norm(model)
    seen: dict = {}
    hooks = [_capture(model.scores, seen, "scores"), _capture(model.head, seen, "head")]
    images, query = _inputs()
    with torch.no_grad():
        out = model(images, query)
        f = seen["scores"][0][0]
        s = seen["scores"][1][1]
        expected_f = (f - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps) \
            * bn.weight[:, None, None] + bn.bias[:, None, None]
        torch.testing.assert_close(seen["head"][0][0], expected_f, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.log_probs, model.head(expected_f, s)[0], rtol=1e-5, atol=1e-5)
        plain = build_model(name, backend="torch")
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head_norm.")})
        plain_out = plain.eval()(images, query).log_probs
        torch.testing.assert_close(out.attention[-1], plain.eval()(images, query).attention[-1])  # scores: raw f
        assert not torch.allclose(out.log_probs, plain_out, atol=1e-3)  # the head does see the normalised f
    for h in hooks:
        h.remove()


def test_dropout_is_on_in_training_and_off_in_eval():
    torch.manual_seed(0)
    p = 0.5
    model = build_model("pan-h-ctx", backend="torch", head_dropout=p)
    seen: dict = {}
    _capture(model.head, seen, "head")
    images, query = _inputs(batch=16)
    model.train()
    torch.manual_seed(3)
    a = model(images, query).log_probs
    zeros = (seen["head"][0][0] == 0).float().mean().item()
    assert abs(zeros - p) < 0.05, zeros  # inverted dropout zeroes a fraction p of the features
    torch.manual_seed(3)
    assert torch.equal(model(images, query).log_probs, a)  # same RNG, same mask
    torch.manual_seed(4)
    assert not torch.equal(model(images, query).log_probs, a)
    model.eval()
    with torch.no_grad():
        b = model(images, query).log_probs
        assert (seen["head"][0][0] == 0).float().mean().item() < 0.01
        assert torch.equal(b, model(images, query).log_probs)


def test_default_model_is_unchanged_and_bad_values_are_refused():
    plain = build_model("pan-h-ctx")
    assert plain.head_norm is None and not any(k.startswith("head_norm") for k in plain.state_dict())
    assert {k for k in build_model("pan-h-ctx", head_dropout=0.5).state_dict()} - set(plain.state_dict()) == {
        "head_norm.0.weight", "head_norm.0.bias", "head_norm.0.running_mean", "head_norm.0.running_var",
        "head_norm.0.num_batches_tracked"}
    for bad in (-0.1, 1.0, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match="head_dropout"):
            build_model("pan-h-ctx", head_dropout=bad)
        with pytest.raises(ValueError, match="head_dropout"):
            TrainConfig(head_dropout=bad)
    for name in ("uniform", "stn-s", "stn-m"):
        assert name not in HEAD_DROPOUT_MODELS
        with pytest.raises(ValueError, match="head_dropout"):
            build_model(name, head_dropout=0.5)
        with pytest.raises(ValueError, match="head_dropout"):
            TrainConfig(model=name, head_dropout=0.5)
    assert "head_dropout" in RESUME_FIELDS
    old = TrainConfig().to_dict()
    del old["head_dropout"]  # a config written before the option existed
    assert TrainConfig.from_dict(old).model_kwargs() == {}
    assert TrainConfig(head_dropout=0.5).model_kwargs() == {"head_dropout": 0.5}


def test_checkpoint_rebuilds_the_head_and_resume_checks_it(tmp_path):
    from pan.data import make_dataset

    cache = tmp_path / "cache"
    train_data = make_dataset("mref", "train", 40, seed=0, cache_dir=cache)
    val_data = make_dataset("mref", "val", 20, seed=0, cache_dir=cache)
    base = dict(model="pan-h-ctx", num_train=40, num_val=20, batch_size=20, max_epochs=1, backend="torch",
                device="cpu", out_dir=str(tmp_path / "run"), quiet=True, checkpoint_every=0)
    train(TrainConfig(**base, head_dropout=0.5), train_data=train_data, val_data=val_data)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["config"]["head_dropout"] == 0.5
    model, config = load_model(tmp_path / "run" / "best.pt")
    assert config.head_dropout == 0.5 and isinstance(model.head_norm[1], torch.nn.Dropout)
    assert model.head_norm[1].p == 0.5 and not model.training
    bn = model.head_norm[0]
    assert int(bn.num_batches_tracked) == 2  # trained: its running statistics moved with the two steps
    with pytest.raises(ResumeError, match="head_dropout"):
        train(TrainConfig(**{**base, "max_epochs": 2}, head_dropout=0.3, resume=True), train_data=train_data,
              val_data=val_data)
