"""Convergence parity of the kernel backends: the same tiny PAN trained with backend="torch" (eager reference) and
backend="triton" (the fused kernels; in the Triton interpreter on CPU-only machines) follows the same loss curve."""

from __future__ import annotations

import pytest
import torch

import pan_kernels
from pan.train import TrainConfig, train, train_step
from tests.conftest import requires_cuda
from tests.test_train_support import TinyPAN, metrics_lines, single_thread, synthetic_dataset  # noqa: F401

requires_triton = pytest.mark.skipif(not pan_kernels.has_triton(), reason="needs the triton package")


def _curve(backend: str, device: torch.device, images, query, answer, steps: int) -> tuple[list[float], TinyPAN]:
    torch.manual_seed(0)
    model = TinyPAN(backend).to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=3e-3)
    losses = []
    for step in range(steps):
        sl = slice((step % 2) * 4, (step % 2) * 4 + 4)  # two fixed batches of 4, alternating
        loss, _, _ = train_step(model, opt, images[sl], query[sl], answer[sl], clip_norm=5.0)
        losses.append(loss.item())
    return losses, model


@requires_triton
def test_tiny_pan_same_losses_torch_vs_triton(device):
    data = synthetic_dataset(8, seed=3, size=10)  # 10x10 images: 4x4 attention maps keep the interpreter quick
    images = torch.from_numpy(data.images[data.image_index]).permute(0, 3, 1, 2).float().div(255).to(device)
    query, answer = torch.from_numpy(data.query).to(device), torch.from_numpy(data.answer).to(device)
    ref, ref_model = _curve("torch", device, images, query, answer, steps=20)
    out, model = _curve("triton", device, images, query, answer, steps=20)
    assert ref[-1] < 0.5 * ref[0]  # it does learn (memorises the 8 examples)
    # Float rounding differs between the backends and RMSprop (which divides by the running gradient size) lets it
    # grow, so the curves agree tightly at first and within a few percent after 20 steps.
    torch.testing.assert_close(torch.tensor(out[:8]), torch.tensor(ref[:8]), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(out), torch.tensor(ref), atol=1e-3, rtol=3e-2)
    with torch.no_grad():
        final = [torch.nn.functional.nll_loss(m.eval()(images, query).log_probs, answer).item()
                 for m in (model, ref_model)]
    assert final[0] == pytest.approx(final[1], rel=3e-2)


@requires_cuda
@requires_triton
def test_pan_h_ctx_same_metrics_torch_vs_triton_on_gpu(tmp_path):
    train_data, val_data = synthetic_dataset(400, seed=0), synthetic_dataset(200, seed=1)
    results = {}
    for backend in ("torch", "triton"):
        config = TrainConfig(model="pan-h-ctx", backend=backend, device="cuda", num_train=400, num_val=200,
                             batch_size=50, max_epochs=3, quiet=True, deterministic=True,
                             out_dir=str(tmp_path / backend))
        summary = train(config, train_data=train_data, val_data=val_data)
        results[backend] = (metrics_lines(tmp_path / backend / "metrics.jsonl"), summary)
    (ref, _), (out, _) = results["torch"], results["triton"]
    for a, b in zip(out, ref):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-2, abs=2e-3)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=5e-2, abs=5e-3)
