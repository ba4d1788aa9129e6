"""Every model of the family: output shapes, log-probabilities, attention maps and their geometry, gradients."""

from __future__ import annotations

import pytest
import torch

from pan.models import MODEL_NAMES, PAPER_NAMES, build_model
from pan.models.backbone import IMAGE_SIZE

GATED = {"pan-s", "pan-h", "pan-s-ctx", "pan-h-ctx"}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_forward_backward(name):
    model = build_model(name, backend="torch")
    images, query = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, 10, (3,))
    out = model(images, query)
    assert out.log_probs.shape == (3, 5)
    torch.testing.assert_close(out.log_probs.exp().sum(-1), torch.ones(3))
    assert len(out.attention) == len(model.attention_geometry)
    for alpha, geom in zip(out.attention, model.attention_geometry):
        side = alpha.shape[-1]
        assert alpha.shape == (3, side, side) and (alpha >= 0).all()
        assert (side - 1) * geom.stride + geom.rf <= IMAGE_SIZE  # every location sees pixels of the image
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "uniform":
        assert not params and out.attention == ()
        return
    out.log_probs[:, 0].sum().backward()
    assert all(p.grad is not None for p in params), [n for n, p in model.named_parameters() if p.grad is None]


@pytest.mark.parametrize("name", sorted(GATED | {"san", "han"}))
def test_attention_maps_of_attention_models(name):
    model = build_model(name, backend="torch").eval()
    out = model(torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, 10, (2,)))
    *gates, last = out.attention
    assert [g.shape[-1] for g in gates] == ([49, 23, 10] if name in GATED else [])
    for g in gates:
        assert ((g > 0) & (g < 1)).all()  # sigmoid gates
    assert last.shape == (2, 4, 4)
    torch.testing.assert_close(last.sum((1, 2)), torch.ones(2))  # softmax over space


def test_context_models_use_3x3_context():
    assert build_model("pan-h-ctx").gates[0].weight1.shape[-1] == 3
    assert build_model("pan-h").gates[0].weight1.shape[-1] == 1


@pytest.mark.parametrize("name", ["stn-s", "stn-m"])
def test_stn_starts_at_identity_with_full_coverage(name):
    """The transformer is initialised to the identity, so its sampling grid covers the image uniformly."""
    model = build_model(name).eval()
    out = model(torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, 10, (2,)))
    (coverage,) = out.attention
    assert coverage.shape == (2, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(coverage, torch.ones_like(coverage))


def test_backend_is_selectable_and_names_are_known():
    model = build_model("pan-s-ctx", backend="triton")
    assert all(g.backend == "triton" for g in model.gates) and model.head.backend == "triton"
    model.set_backend("torch")
    assert model.scores.backend == "torch"
    assert set(PAPER_NAMES) == set(MODEL_NAMES)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")
