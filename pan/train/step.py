"""One optimiser step and one evaluation pass, shared by the training loop, `pan eval` and the tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pan.train.data import ResidentData
from pan.train.regularizers import gate_term, per_gate_weights

__all__ = ["train_step", "evaluate_sums", "evaluate", "param_digest"]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, query: torch.Tensor,
               answer: torch.Tensor, *, clip_norm: float | None = 5.0, amp: bool = False,
               gate_sparsity: float | Sequence[float] = 0.0, num_gates: int = 0,
               gate_kind: str = "l1") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimiser step on the NLL of ``answer`` (+ ``gate_sparsity`` x `pan.train.regularizers.gate_term`
    (``gate_kind``) of the first ``num_gates`` attention maps, the model's sigmoid gates; one weight for all, or a
    sequence of one per gate); returns (mean NLL, number
    correct, gradient norm before clipping) as device tensors (no host sync). Gradients are clipped to total norm
    ``clip_norm`` (None: not)."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=images.device.type, dtype=torch.bfloat16, enabled=amp):
        out = model(images, query)
    log_probs = out.log_probs.float()
    loss = F.nll_loss(log_probs, answer)
    weights = per_gate_weights(gate_sparsity, num_gates)
    if any(w > 0 for w in weights):
        term = gate_term(gate_kind, out.attention[:num_gates], out.gate_inputs[:num_gates], weights)
        (loss + term).backward()
    else:
        loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    max_norm = float("inf") if clip_norm is None else clip_norm
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    correct = (log_probs.detach().argmax(dim=1) == answer).sum()
    return loss.detach(), correct, grad_norm.detach()


@torch.no_grad()
def evaluate_sums(model: nn.Module, data: ResidentData, batch_size: int, *, amp: bool = False, rank: int = 0,
                  world: int = 1) -> torch.Tensor:
    """[loss sum, correct, count] (float64, on the device) over this rank's share of the fixed-shape batches."""
    was_training = model.training
    model.eval()
    batches, valid = data.padded_batches(batch_size)
    sums = torch.zeros(3, dtype=torch.float64, device=data.device)
    for b in range(rank, batches.shape[0], world):
        images, query, answer = data.gather(batches[b])
        with torch.autocast(device_type=data.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(images, query)
        log_probs = out.log_probs.float()
        mask = valid[b]
        nll = F.nll_loss(log_probs, answer, reduction="none")
        correct = (log_probs.argmax(dim=1) == answer) & mask
        sums += torch.stack([(nll * mask).sum().double(), correct.sum().double(), mask.sum().double()])
    model.train(was_training)
    return sums


def evaluate(model: nn.Module, dataset: Any, *, batch_size: int = 200, device: str | torch.device | None = None,
             amp: bool = False) -> dict:
    """Mean NLL (``loss``) and answer accuracy (``acc``, a fraction) of ``model`` on a PanDataset."""
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    sums = evaluate_sums(model, ResidentData(dataset, device), batch_size, amp=amp).tolist()
    return {"loss": sums[0] / sums[2], "acc": sums[1] / sums[2], "count": int(sums[2])}


def param_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer of ``model`` (state-dict order): equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
