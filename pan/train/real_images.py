"""Training the VGG-16 PAN on Visual Genome attributes (paper §4.2): Adam with one learning rate for the backbone and
another for the attention layers and head, lr x0.9 per epoch, the multi-label negative log-likelihood, validation
mAP each epoch, checkpoints at every epoch and on Ctrl-C / SIGTERM (mid-epoch: the batches done are skipped on
resume, the epoch's order being fixed by (seed, epoch)).

    summary = train_real_images(RealImageConfig(data_dir="~/data/vg", out="runs/vg-pan-h-ctx"))

Files in `out`: config.json, metrics.jsonl (one line per epoch), last.pt, best.pt (best validation weighted mAP),
summary.json. Checkpoints share pan.train.checkpoint's format with `config["kind"] == "real-images"`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from pan.train.checkpoint import CHECKPOINT_FORMAT, CheckpointError, ResumeError, atomic_torch_save, load_checkpoint
from pan.train.interrupt import StopRequest

REAL_DATASETS = ("vg",)
KIND = "real-images"


@dataclass
class RealImageConfig:
    """Settings of one Visual Genome run (`max_*` cap the examples, for smoke runs; 0 = all)."""

    data_dir: str = ""
    out: str = "runs/vg"
    dataset: str = "vg"
    model: str = "pan-h-ctx"
    prior: bool = False
    backbone_weights: str | None = None
    backbone: str = "vgg16"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    backbone_lr: float = 1e-5
    decay_factor: float = 0.9
    image_size: int = 224
    min_count: int = 100
    max_train: int = 0
    max_val: int = 0
    num_workers: int = 2
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    amp: bool = False

    def validate(self) -> None:
        if self.dataset not in REAL_DATASETS:
            raise ValueError(f"dataset must be one of {REAL_DATASETS} to train on real images (voc07 has no attribute "
                             f"labels: evaluate a Visual Genome model on it with pan eval), got {self.dataset!r}")
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "backbone_lr", "decay_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> RealImageConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def load_splits(cfg: RealImageConfig):
    """(train, val) VisualGenome readers, and their torch Datasets capped at max_train / max_val examples."""
    from pan.data.real_images import VisualGenomeImages
    from pan.data.visual_genome import VisualGenome

    readers = [VisualGenome(cfg.data_dir, split, min_count=cfg.min_count, seed=cfg.seed) for split in ("train", "val")]
    datasets = []
    for reader, cap in zip(readers, (cfg.max_train, cfg.max_val)):
        if len(reader) == 0:
            raise ValueError(f"--data-dir {cfg.data_dir}: the {reader.split} split has no example (too few images, "
                             f"or no class / attribute seen more than {cfg.min_count} times)")
        data = VisualGenomeImages(reader, size=cfg.image_size)
        datasets.append(Subset(data, range(min(cap, len(data)))) if cap else data)
    return readers, datasets


def build_real_model(cfg: RealImageConfig, num_queries: int, num_classes: int, *, with_weights: bool = True):
    from pan.models.small_cnn import build_backbone_pan

    return build_backbone_pan(cfg.backbone, cfg.model, num_queries=num_queries, num_classes=num_classes,
                              prior=cfg.prior, weights=cfg.backbone_weights if with_weights else None,
                              backend=cfg.backend)


def build_optimizer(model, cfg: RealImageConfig) -> torch.optim.Adam:
    """Adam with two parameter groups: the backbone stages at backbone_lr, everything else at lr."""
    backbone = model.backbone_parameters()
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.Adam([{"params": backbone, "lr": cfg.backbone_lr, "name": "backbone"},
                             {"params": rest, "lr": cfg.lr, "name": "attention+head"}])


def multilabel_nll(log_p: torch.Tensor, log_1mp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-sum_a [y_a log p_a + (1 - y_a) log(1 - p_a)], averaged over the batch."""
    return -(target * log_p.float() + (1 - target) * log_1mp.float()).sum(1).mean()


def train_real_images(cfg: RealImageConfig, *, resume: bool = False, progress: bool = True) -> dict:
    """Train (or, with resume, continue from out/last.pt) and return the summary written to out/summary.json."""
    from pan.evaluation.real_images import evaluate_multilabel

    cfg.validate()
    out = Path(cfg.out)
    device = _device(cfg.device)
    if not resume and (out / "last.pt").is_file():
        raise ResumeError(f"{out} already holds a run (last.pt); continue it with --resume or choose another --out")
    torch.manual_seed(cfg.seed)
    (train_reader, _), (train_data, val_data) = load_splits(cfg)
    num_queries, num_classes = len(train_reader.classes), len(train_reader.attributes)
    model = build_real_model(cfg, num_queries, num_classes, with_weights=not resume).to(device)
    optimizer = build_optimizer(model, cfg)
    state = {"epoch": 0, "best_map": -1.0, "best_epoch": 0}
    if resume:
        ckpt = load_checkpoint(out / "last.pt")
        saved = {k: v for k, v in ckpt["config"].items() if k != "epochs"}
        if saved != {k: v for k, v in cfg.to_dict().items() if k != "epochs"}:
            raise ResumeError(f"{out / 'last.pt'} was made with other settings; resume with the same arguments "
                              "(only --epochs may change)")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        torch.set_rng_state(ckpt["rng"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    vocab = {"classes": train_reader.classes, "attributes": train_reader.attributes}
    log = open(out / "metrics.jsonl", "a")
    stop = StopRequest()
    with stop:
        while state["epoch"] < cfg.epochs and stop.reason is None:
            epoch = state["epoch"] + 1
            factor = cfg.decay_factor ** (epoch - 1)
            for group, base in zip(optimizer.param_groups, (cfg.backbone_lr, cfg.lr)):
                group["lr"] = base * factor
            # the epoch's order depends only on (seed, epoch); a mid-epoch checkpoint skips the batches done
            order = torch.randperm(len(train_data), generator=torch.Generator().manual_seed(cfg.seed + epoch))
            done = state.get("batches_done", 0)
            loader = DataLoader(Subset(train_data, order[done * cfg.batch_size:].tolist()),
                                batch_size=cfg.batch_size, num_workers=cfg.num_workers)
            model.train()
            start, loss_sum = time.time(), state.get("loss_sum", 0.0)
            for images, query, target, _ in loader:
                images, query, target = images.to(device), query.to(device), target.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                    o = model(images, query)
                loss = multilabel_nll(o.log_p, o.log_1mp, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item()
                done += 1
                if stop.reason is not None:
                    break
            if stop.reason is not None:
                state.update(batches_done=done, loss_sum=loss_sum)
                atomic_torch_save(_checkpoint(cfg, model, optimizer, state, vocab, None), out / "last.pt")
                print(f"pan train: saved {out / 'last.pt'} after {done} batches of epoch {epoch}; continue with "
                      "--resume", flush=True)
                break
            val = evaluate_multilabel(model, val_data, batch_size=cfg.batch_size, device=device, amp=cfg.amp)
            state.update(epoch=epoch, batches_done=0, loss_sum=0.0)
            line = {"epoch": epoch, "train_loss": loss_sum / max(done, 1), "val_weighted_map": val["weighted_map"],
                    "val_map": val["map"], "val_tpr": val["tpr"], "lr": cfg.lr * factor,
                    "seconds": round(time.time() - start, 1)}
            if val["weighted_map"] > state["best_map"]:
                state.update(best_map=val["weighted_map"], best_epoch=epoch)
                atomic_torch_save(_checkpoint(cfg, model, optimizer, state, vocab, line), out / "best.pt")
            atomic_torch_save(_checkpoint(cfg, model, optimizer, state, vocab, line), out / "last.pt")
            log.write(json.dumps(line) + "\n")
            log.flush()
            if progress:
                print(f"epoch {epoch}: loss {line['train_loss']:.4f}  val mAP (weighted) "
                      f"{100 * val['weighted_map']:.2f}%  TPR {100 * val['tpr']:.2f}%", flush=True)
    log.close()
    summary = {"epochs_done": state["epoch"], "best_weighted_map": state["best_map"],
               "best_epoch": state["best_epoch"], "interrupted": stop.reason}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _checkpoint(cfg, model, optimizer, state, vocab, metrics) -> dict:
    return {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "state": dict(state), "rng": torch.get_rng_state(), "vocab": vocab,
            "metrics": metrics}


def load_real_model(path: str | Path, *, backend: str = "auto", device: str | torch.device = "cpu"):
    """(model in eval mode, config, vocab) of a checkpoint written by train_real_images."""
    ckpt = load_checkpoint(path)
    if ckpt["config"].get("kind") != KIND or "vocab" not in ckpt:
        raise CheckpointError(f"{path} is not a Visual Genome (real-image) checkpoint")
    cfg = RealImageConfig.from_dict(ckpt["config"])
    cfg.backend = backend
    vocab = ckpt["vocab"]
    try:
        model = build_real_model(cfg, len(vocab["classes"]), len(vocab["attributes"]), with_weights=False)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} does not fit its model: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), cfg, vocab
