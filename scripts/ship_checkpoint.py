"""Turn a training run's checkpoint into the small file `pan demo --pretrained` ships (pan/assets).

Keeps what evaluation needs (format, config, model weights, state, last metrics) and drops the optimiser, the RNG
and the running sums, so the file is a fraction of the run's; adds a ``provenance`` entry: the commands that trained
it, in the order they ran, the training images behind it (a warm start's included), this machine and library
versions (`pan.provenance.make_header`), and the run's summary.

A run started with ``--init-from`` needs one ``--command`` per run of its chain of warm starts, the first run first:

    python scripts/ship_checkpoint.py runs/sf/best.pt pan/assets/demo_pan-h-ctx_mref.pt --overwrite \\
        --command "pan train --recipe converge ... --epochs 34 --out runs/s" \\
        --command "pan train --recipe converge ... --init-from runs/s/best.pt --out runs/sf"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from pan.provenance import make_header
from pan.train import CheckpointError, load_checkpoint
from pan.train.checkpoint import atomic_torch_save
from pan.train.warm_start import chain_images, images_per_epoch, warm_start_chain

_KEPT = ("format", "config", "model", "state", "metrics", "world_size", "lr")


def shipped(checkpoint: Path, commands: list[str]) -> dict:
    """The shipped form of ``checkpoint``: weights, config, state, and a provenance entry. Raises ValueError naming
    the argument when the commands do not match the run's chain of warm starts or a checkpoint of it is missing."""
    ckpt = load_checkpoint(checkpoint)
    config = ckpt["config"]
    chain, missing = warm_start_chain(config, checkpoint.parent)
    if missing:
        raise ValueError(f"checkpoint: its warm start {missing} is not here; the images behind it cannot be counted")
    behind, runs = chain_images(chain), 1 + len(chain)
    if len(commands) != runs:
        raise ValueError(f"--command: given {len(commands)}, but {checkpoint} comes from {runs} run(s) (each "
                         f"--init-from adds one); give each run's command, the first run first")
    if not all(c.startswith("pan train ") for c in commands):
        raise ValueError("--command: each must be the `pan train ...` command of one run")
    summary_file = checkpoint.parent / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    own = ckpt["state"]["epoch"] * images_per_epoch(config["num_train"], config["batch_size"])
    out = {key: ckpt[key] for key in _KEPT}
    out.update({"optimizer": None, "accum": None, "rng": None,
                "provenance": {"commands": commands, "source": checkpoint.name, "summary": summary,
                               "images_trained": own + behind, "images_before_warm_start": behind,
                               "header": json.loads(json.dumps(make_header(torch.device("cpu")), default=str))}})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a run's last.pt or best.pt")
    parser.add_argument("out", type=Path, help="the file to write")
    parser.add_argument("--command", action="append", required=True,
                        help="the `pan train` command of a run behind the checkpoint (once per run, first run first)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        print(f"error: out: {args.out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    try:
        result = shipped(args.checkpoint, args.command)
    except (ValueError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    atomic_torch_save(result, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, "
          f"{result['provenance']['images_trained']:,} training images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
