"""PAN attached to torchvision backbones: VGG-16 (the paper's real-image model) and ResNet-50, one training step and
one evaluation on random 224x224 inputs on the CPU; backbone weights from a local file, with clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from pan.models.attach import AttachedPAN, MultiLabelOutput
from pan.models.outputs import ModelOutput
from pan.models.torchvision_pan import (
    VGG_MODEL_NAMES,
    VGG_MODELS,
    build_resnet50_pan,
    build_vgg_pan,
    load_backbone_weights,
    vgg16_stages,
)


def _batch(B=2, size=224, A=7, Q=5):
    """A random batch; also seeds torch, so the model built next starts from fixed weights."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    return (torch.rand(B, 3, size, size, generator=g), torch.randint(0, Q, (B,), generator=g),
            torch.rand(B, A, generator=g) < 0.3)


def _nll(out, target):
    return -(target * out.log_p + (~target) * out.log_1mp).sum(1).mean()


def _train_step_and_eval(model, images, query, target, steps=1):
    """``steps`` Adam steps on the multi-label NLL of one batch; the NLL of that batch (train mode, no grad) must
    fall. Returns (loss before, eval output after)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    losses = []
    for _ in range(steps):
        loss = _nll(model(images, query), target)
        opt.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(_nll(model(images, query), target).item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 0.01 * abs(losses[0]), f"the loss does not fall on a batch it can fit: {losses}"
    model.eval()
    with torch.no_grad():
        after = model(images, query)
    return losses[0], after


def test_vgg16_stages_cut_at_the_pools():
    stages = vgg16_stages(torchvision.models.vgg16(weights=None))
    assert list(stages) == ["pool1", "pool2", "pool3", "pool4", "pool5"]
    x = torch.rand(1, 3, 64, 64)
    sizes = []
    for stage in stages.values():
        x = stage(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


@pytest.mark.parametrize("name,size", [("pan-h-ctx", 224), ("pan-s-ctx", 64)])
def test_vgg_pan_trains_and_evaluates(name, size):
    images, query, target = _batch(size=size)
    model = build_vgg_pan(name, num_queries=5, num_classes=7, backend="torch")
    assert [g.weight1.shape[-1] for g in model.gates.values()] == [5, 5]  # local context delta = 2
    assert model.scores.weight1.shape[-1] == 5
    loss, out = _train_step_and_eval(model, images, query, target)
    assert isinstance(out, MultiLabelOutput) and out.log_p.shape == (2, 7)
    assert torch.allclose(out.log_p.exp() + out.log_1mp.exp(), torch.ones(2, 7), atol=1e-5)
    grid = size // 8
    assert [tuple(a.shape) for a in out.attention] == [(2, grid, grid), (2, grid // 2, grid // 2),
                                                       (2, grid // 4, grid // 4)]
    assert torch.isfinite(torch.tensor(loss))


def test_han_and_prior_variants():
    images, query, target = _batch(size=64)
    han = build_vgg_pan("han", num_queries=5, num_classes=7, backend="torch")
    assert not han.gates and han.scores.weight1.shape[-1] == 1
    out = han(images, query)
    assert [tuple(a.shape) for a in out.attention] == [(2, 2, 2)]
    for name in ("han", "san"):
        prior = build_vgg_pan(name, num_queries=5, num_classes=7, prior=True, backend="torch")
        p_out = prior(images, query)
        assert p_out.log_p.shape == (2, 7)
        # the prior's query path reaches the answer
        q_grad = torch.autograd.grad(p_out.log_p.sum(), prior.prior.query_embedding.weight)[0]
        assert q_grad.abs().sum() > 0
    single = build_vgg_pan("pan-h-ctx", num_queries=5, num_classes=7, multilabel=False, backend="torch")
    s_out = single(images, query)
    assert isinstance(s_out, ModelOutput)
    torch.testing.assert_close(s_out.log_probs.exp().sum(1), torch.ones(2))


def test_resnet50_pan_trains_and_evaluates():
    images, query, target = _batch(size=64)
    model = build_resnet50_pan(num_queries=5, num_classes=7, backend="torch")
    loss, out = _train_step_and_eval(model, images, query, target)
    assert out.log_p.shape == (2, 7)
    assert [tuple(a.shape) for a in out.attention] == [(2, 8, 8), (2, 4, 4), (2, 2, 2)]


def test_backbone_weights_load_from_a_local_file_with_clear_errors(tmp_path):
    vgg = torchvision.models.vgg16(weights=None)
    good = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), good)
    model = build_vgg_pan("han", num_queries=3, num_classes=4, weights=good, backend="torch")
    torch.testing.assert_close(model.stages["pool1"][0].weight, vgg.features[0].weight)
    with pytest.raises(ValueError, match="no such file"):
        build_vgg_pan("han", num_queries=3, num_classes=4, weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: not a readable torch state dict"):
        load_backbone_weights(vgg, garbage)
    resnet_file = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), resnet_file)
    with pytest.raises(ValueError, match="resnet.pth: does not fit VGG"):
        load_backbone_weights(vgg, resnet_file)


def test_builder_rejects_bad_stage_names():
    stages = vgg16_stages(torchvision.models.vgg16(weights=None))
    common = dict(channels={"pool3": 256, "pool4": 512, "pool5": 512}, num_queries=3, num_classes=4)
    with pytest.raises(ValueError, match="final must name a stage"):
        AttachedPAN(stages, gated=(), final="pool9", **common)
    with pytest.raises(ValueError, match="gated must name stages before final"):
        AttachedPAN(stages, gated=("pool5",), final="pool4", **common)
    with pytest.raises(ValueError, match="missing"):
        AttachedPAN(stages, gated=("pool2",), final="pool5", **common)
    with pytest.raises(ValueError, match="unknown VGG model"):
        build_vgg_pan("stn-x", num_queries=3, num_classes=4)
    assert set(VGG_MODELS) == {"san", "han", "pan-s-ctx", "pan-h-ctx"}
    assert set(VGG_MODEL_NAMES) == {*VGG_MODELS, "stn-s", "stn-m"}


@pytest.mark.parametrize("name", ["stn-s", "stn-m"])
def test_vgg_stn_baselines_train_and_report_coverage(name):
    images, query, target = _batch(size=64)
    model = build_vgg_pan(name, num_queries=5, num_classes=7, backend="torch")
    assert len(model.transformers) == (5 if name == "stn-m" else 1)
    loss, out = _train_step_and_eval(model, images, query, target)
    assert out.log_p.shape == (2, 7) and torch.isfinite(torch.tensor(loss))
    (coverage,) = out.attention
    assert coverage.shape == (2, 64, 64)
    # the transformers start at the identity: every one of the 64 x 64 sampling points lands on the image
    assert coverage.sum((1, 2)).tolist() == [64 * 64, 64 * 64]
    backbone = {id(p) for p in model.backbone_parameters()}
    assert all(id(p) in backbone for t in model.transformers for p in t.loc_net.parameters())
