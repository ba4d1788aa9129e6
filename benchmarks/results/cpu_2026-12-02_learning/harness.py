"""Learning-curve harness for issue 10: train PAN[H]+CTX on MREF on the CPU for a fixed time, logging validation
accuracy, TPR, each attention layer's TPR alone and each layer's query-embedding gradient norm (JSON lines).

Run from a directory with the package installed, e.g.
    python harness.py --name B --threads 1 --seconds 1800 --eval_every 120 --lr 1e-3 --bs 32 --init glorot
Logs go to LOG_DIR/NAME.jsonl (--log-dir, default /work/exp/logs).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pan.data import make_dataset
from pan.evaluation.metrics import batch_images, evaluate
from pan.evaluation.tpr import image_attention, true_positive_ratio
from pan.models import build_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--log-dir", default="/work/exp/logs")
    p.add_argument("--model", default="pan-h-ctx")
    p.add_argument("--opt", default="adam", choices=("adam", "adamw", "rmsprop", "sgd"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--ntrain", type=int, default=30000)
    p.add_argument("--nval", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=900)
    p.add_argument("--init", default="default", choices=("default", "glorot"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clip", type=float, default=5.0)
    p.add_argument("--eval_every", type=float, default=60)
    p.add_argument("--qscale", type=float, default=1.0, help="multiply every query embedding at init")
    p.add_argument("--wd", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps")
    p.add_argument("--cosine", action="store_true", help="cosine lr decay over --seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p.add_argument("--gate_b2", type=float, default=None, help="start every gate's output bias here")
    p.add_argument("--conv_bias", type=float, default=None, help="start backbone conv biases in U(b/2, b)")
    p.add_argument("--gate_sparsity", type=float, default=0.0,
                   help="add this x sum over gates of mean(alpha) / max(alpha) per image to the loss")
    p.add_argument("--sparsity_kind", default="relative", choices=("relative", "absolute", "content"),
                   help="relative: mean(alpha) / max(alpha); absolute: mean(alpha); content: mean(alpha) / "
                        "mean(alpha * e), e = the gate input's channel norm over its image mean (detached)")
    p.add_argument("--bn_eps", type=float, default=None, help="eps of the batch-norms after the gates")
    p.add_argument("--sparsity_start", type=int, default=0, help="images seen before --gate_sparsity applies")
    p.add_argument("--gate_weights", type=lambda t: [float(v) for v in t.split(",")], default=None,
                   help="per-gate multipliers of the term, e.g. 1,0,0 (default: 1 for every gate)")
    p.add_argument("--curriculum_digits", type=lambda t: tuple(int(v) for v in t.split(",")), default=None,
                   help="digits per image (lo,hi) of an easier MREF used for the first --curriculum_images")
    p.add_argument("--curriculum_images", type=int, default=0)
    p.add_argument("--qlr_mult", type=float, default=1.0, help="learning rate multiplier of the query embeddings")
    p.add_argument("--save", default=None, help="save the final state_dict here")
    p.add_argument("--load", default=None, help="start from this state_dict (fresh optimiser)")
    return p.parse_args()


def query_blind_accuracy(ds) -> float:
    """Answer the most common colour among the image's digits (ties -> lowest colour index)."""
    correct = 0
    for i in range(len(ds.query)):
        answers = ds.answer[ds.image_index == ds.image_index[i]]
        correct += np.bincount(answers, minlength=5).argmax() == ds.answer[i]
    return correct / len(ds.query)


def reinitialise(model: nn.Module, a: argparse.Namespace) -> None:
    if a.init == "glorot":
        for module in model.modules():
            for name, prm in module.named_parameters(recurse=False):
                if prm.ndim >= 2:
                    nn.init.xavier_uniform_(prm)
                elif "bias" in name:
                    nn.init.zeros_(prm)
                elif name == "weight2":
                    bound = math.sqrt(6 / (prm.numel() + 1))
                    nn.init.uniform_(prm, -bound, bound)
    if a.conv_bias is not None:
        for stage in model.backbone.stages:
            stage[0].bias.data.uniform_(0.5 * a.conv_bias, a.conv_bias)
    if a.gate_b2 is not None:
        for gate in model.gates:
            gate.bias2.data.fill_(a.gate_b2)
    for module in model.modules():
        if hasattr(module, "query_embedding"):
            module.query_embedding.weight.data.mul_(a.qscale)


def build_optimizer(params, a: argparse.Namespace) -> torch.optim.Optimizer:
    if a.opt == "adam":
        return torch.optim.Adam(params, lr=a.lr, weight_decay=a.wd)
    if a.opt == "adamw":
        return torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    if a.opt == "rmsprop":
        return torch.optim.RMSprop(params, lr=a.lr, alpha=0.9, eps=1e-6)
    return torch.optim.SGD(params, lr=a.lr, momentum=0.9, nesterov=True)


def layer_tprs(model: nn.Module, va, a: argparse.Namespace, n: int = 200) -> list[float]:
    """TPR of each attention layer's map alone on the first n validation examples."""
    model.eval()
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        idx = np.arange(n)
        x, masks = batch_images(va, idx, "cpu")
        result = model(x.contiguous(memory_format=torch.channels_last), torch.from_numpy(va.query[idx]))
        for m, g in zip(result.attention, model.attention_geometry):
            att = image_attention([m.float()], [g], n, "cpu")
            out.append(round(true_positive_ratio(att, masks).mean().item(), 4))
    model.train()
    return out


def gate_sparsity(maps, kind: str, inputs=None, weights=None) -> torch.Tensor:
    """Sum over gate maps [B, H, W] of the batch mean of mean(alpha) / max(alpha) (relative: scale-free, 1 for a flat
    map), of mean(alpha) (absolute) or of mean(alpha) / mean(alpha * e) (content; e = channel norm of the gate's
    input [B, C, H, W] over its per-image mean, detached: 1 for a flat map, small when the gate sits on features)."""
    total = 0.0
    for k, alpha in enumerate(maps):
        flat = alpha.float().flatten(1)
        per_image = flat.mean(1)
        if kind == "relative":
            per_image = per_image / flat.amax(1).clamp_min(1e-12)
        if kind == "content":
            e = inputs[k].detach().float().norm(dim=1).flatten(1)
            e = e / e.mean(1, keepdim=True).clamp_min(1e-12)
            per_image = per_image / (flat * e).mean(1).clamp_min(1e-12)
        total = total + (1.0 if weights is None else weights[k]) * per_image.mean()
    return total


def validate(model: nn.Module, va, a: argparse.Namespace) -> dict:
    model.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
        r = evaluate(model, va, batch_size=250)
    model.train()
    return r


def learning_rate(a: argparse.Namespace, step: int, elapsed: float) -> float:
    lr = a.lr
    if a.warmup and step < a.warmup:
        lr = a.lr * (step + 1) / a.warmup
    if a.cosine:
        lr = lr * 0.5 * (1 + math.cos(math.pi * elapsed / a.seconds))
    return lr


def main() -> None:
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tr = make_dataset("mref", "train", a.ntrain, seed=0)
    va = make_dataset("mref", "val", a.nval, seed=0)
    print("query-blind val accuracy", query_blind_accuracy(va), flush=True)
    model = build_model(a.model, backend="torch")
    reinitialise(model, a)
    if a.load:
        model.load_state_dict(torch.load(a.load, map_location="cpu"))
    model = model.to(memory_format=torch.channels_last)
    if a.bn_eps is not None:
        for norm in model.norms:
            norm.eps = a.bn_eps
    gate_inputs = {}
    for k, gate in enumerate(model.gates):
        gate.register_forward_hook(lambda mod, args, out, k=k: gate_inputs.__setitem__(k, args[0]))
    params = list(model.parameters())
    query_params = [p for n, p in model.named_parameters() if "query_embedding" in n]
    other = [p for n, p in model.named_parameters() if "query_embedding" not in n]
    opt = build_optimizer([{"params": other, "mult": 1.0}, {"params": query_params, "mult": a.qlr_mult}], a)
    def tensors(ds):
        return (torch.from_numpy(ds.images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(ds.image_index).long(),
                torch.from_numpy(ds.query).long(), torch.from_numpy(ds.answer).long())

    images, img_idx, queries, answers = tensors(tr)
    easy = None
    if a.curriculum_digits:
        import pan.data.generate as generate
        import pan.data.render as render

        saved = generate.DIGITS_PER_IMAGE
        generate.DIGITS_PER_IMAGE = render.DIGITS_PER_IMAGE = a.curriculum_digits
        easy_ds = make_dataset("mref", "train", a.ntrain, seed=5, cache_dir=None)
        generate.DIGITS_PER_IMAGE = render.DIGITS_PER_IMAGE = saved
        print("curriculum set: query-blind", query_blind_accuracy(easy_ds), flush=True)
        easy = tensors(easy_ds)
        hard = (images, img_idx, queries, answers)
        images, img_idx, queries, answers = easy
    Path(a.log_dir).mkdir(parents=True, exist_ok=True)
    log = open(Path(a.log_dir) / f"{a.name}.jsonl", "w")
    t0 = time.time()
    seen = step = pos = 0
    next_eval = a.eval_every
    losses, accs = [], []
    gen = torch.Generator().manual_seed(a.seed)
    perm = torch.randperm(len(queries), generator=gen)
    train_time = 0.0
    while train_time < a.seconds:
        ts = time.time()
        if easy is not None and seen >= a.curriculum_images:
            images, img_idx, queries, answers = hard
            easy = None
            perm, pos = torch.randperm(len(queries), generator=gen), 0
        if pos + a.bs > len(queries):
            perm = torch.randperm(len(queries), generator=gen)
            pos = 0
        idx = perm[pos:pos + a.bs]
        pos += a.bs
        x = images[img_idx[idx]].float().div_(255).contiguous(memory_format=torch.channels_last)
        lr = learning_rate(a, step, train_time)
        for group in opt.param_groups:
            group["lr"] = lr * group["mult"]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not a.fp32):
            out = model(x, queries[idx])
        log_probs = out.log_probs.float()
        loss = F.nll_loss(log_probs, answers[idx])
        if a.gate_sparsity and seen >= a.sparsity_start:
            loss = loss + a.gate_sparsity * gate_sparsity(out.attention[:-1], a.sparsity_kind, gate_inputs,
                                                         a.gate_weights)
        loss.backward()
        qgrad = [layer.query_embedding.weight.grad.norm().item() for layer in [*model.gates, model.scores]]
        gn = torch.nn.utils.clip_grad_norm_(params, a.clip if a.clip > 0 else float("inf"))
        opt.step()
        losses.append(loss.item())
        accs.append((log_probs.argmax(1) == answers[idx]).float().mean().item())
        step += 1
        seen += a.bs
        train_time += time.time() - ts
        if train_time >= next_eval or train_time >= a.seconds:
            next_eval += a.eval_every
            r = validate(model, va, a)
            entry = {"t": round(train_time, 1), "step": step, "images": seen, "train_loss": float(np.mean(losses)),
                     "train_acc": float(np.mean(accs)), "val_acc": r["accuracy"], "tpr": r["tpr"], "lr": lr,
                     "gn": float(gn), "layer_tpr": layer_tprs(model, va, a), "qgrad": [round(g, 5) for g in qgrad],
                     "wall": round(time.time() - t0, 1)}
            losses, accs = [], []
            log.write(json.dumps(entry) + "\n")
            log.flush()
            print(json.dumps(entry), flush=True)
    if a.save:
        torch.save(model.state_dict(), a.save)


if __name__ == "__main__":
    main()
