"""PAN learns to use the query: on a tiny, easy MREF variant (a 0 and a 1 per image, in different colours; see
tests/easy_mref.py) the query-blind answer scores at most 50%, and answering the *other* digit's colour 0%.

The torch backend trains PAN[H]+CTX through `pan.train.train` (250 images = 500 examples, 3 epochs of Adam at batch
8: 186 steps, about 40 s of one CPU core, 90 s on a busy 2-core host; the learning starts in epoch 2) and must beat
the query-blind rule by a wide margin, put clearly more attention on the queried digit than uniform attention does
(TPR), and collapse when the queries are swapped (so its answers follow the query, not the image). On Triton (the
interpreter on CPU) a few optimiser steps must follow the torch backend's and give every attention layer's query
embedding a gradient.
"""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from pan.data import PanDataset
from pan.evaluation.baselines import query_blind_accuracy, uniform_tpr
from pan.evaluation.metrics import evaluate
from pan.train import TrainConfig, load_model, train
from pan.train.step import train_step
from tests.easy_mref import make_easy_mref
from tests.test_train_support import TinyPAN, single_thread, synthetic_dataset  # noqa: F401


@pytest.fixture(scope="module")
def easy():
    return make_easy_mref(250, seed=0), make_easy_mref(100, seed=1)


def _swapped_queries(data: PanDataset) -> PanDataset:
    """The same examples asking for the other digit (0 <-> 1), whose colour always differs."""
    return PanDataset(**{**data.arrays(), "query": 1 - data.query}, meta=data.meta)


def test_pan_learns_to_use_the_query(easy, tmp_path):
    train_data, val_data = easy
    blind = query_blind_accuracy(val_data)
    assert blind <= 0.5
    summary = train(TrainConfig(model="pan-h-ctx", dataset="mref", num_train=len(train_data), num_val=len(val_data),
                                optimizer="adam", lr=1e-3, batch_size=8, max_epochs=3, patience=3, backend="torch",
                                device="cpu", amp=False, channels_last=True, out_dir=str(tmp_path), quiet=True),
                    train_data=train_data, val_data=val_data)
    model, _ = load_model(summary["checkpoint"], backend="torch")
    result = evaluate(model, val_data)
    accuracy, tpr, uniform = result["accuracy"], result["tpr"], uniform_tpr(val_data)
    assert accuracy >= blind + 0.3, f"accuracy {accuracy:.3f} vs query-blind {blind:.3f}"
    assert tpr >= 1.5 * uniform, f"TPR {tpr:.3f} vs uniform attention's {uniform:.3f}: it does not attend"
    swapped = evaluate(model, _swapped_queries(val_data))["accuracy"]
    assert swapped <= 0.2, f"with the queries swapped the model still answers {swapped:.3f}: it ignores the query"


@pytest.mark.skipif(not pan_kernels.has_triton(), reason="needs the triton package")
def test_triton_training_steps_follow_torch_and_reach_every_query():
    """A few Adam steps of TinyPAN on 10x10 images (the interpreter runs a full-size PAN at ~1 min per step): the
    Triton backend's losses, query-embedding gradients and query-swapped answers follow the torch backend's."""
    data = synthetic_dataset(8, seed=5, size=10)
    images = torch.from_numpy(data.images[data.image_index]).permute(0, 3, 1, 2).float().div(255)
    query, answer = torch.from_numpy(data.query), torch.from_numpy(data.answer)
    swapped = query.view(-1, 2).flip(1).reshape(-1)  # ask each image about its other block
    runs = {}
    for backend in ("torch", "triton"):
        torch.manual_seed(0)
        model = TinyPAN(backend)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = [train_step(model, optimizer, images, query, answer)[0].item() for _ in range(3)]
        grads = [layer.query_embedding.weight.grad.norm().item() for layer in (model.gate, model.scores)]
        model.eval()
        with torch.no_grad():
            moved = (model(images, query).log_probs - model(images, swapped).log_probs).abs().amax().item()
        runs[backend] = (losses, grads, moved)
        assert all(g > 1e-6 for g in grads), f"{backend}: a query embedding got no gradient: {grads}"
        assert moved > 1e-3, f"{backend}: swapping the query does not change the answer"
    for ours, ref in zip(runs["triton"], runs["torch"]):
        torch.testing.assert_close(torch.tensor(ours), torch.tensor(ref), rtol=2e-3, atol=1e-5)
