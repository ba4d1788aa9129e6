"""Turn a training run's checkpoint into the small file `pan demo --pretrained` ships (pan/assets).

Keeps what evaluation needs (format, config, model weights, state, last metrics) and drops the optimiser, the RNG
and the running sums, so the file is a fraction of the run's; adds a ``provenance`` entry: the command that trained
it, this machine and library versions (`pan.provenance.make_header`), and the run's summary.

    python scripts/ship_checkpoint.py runs/demo-long/last.pt pan/assets/demo_pan-h-ctx_mref.pt \\
        --command "pan train --recipe demo-long --out runs/demo-long"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pan.provenance import make_header
from pan.train import load_checkpoint
from pan.train.checkpoint import atomic_torch_save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a run's last.pt or best.pt")
    parser.add_argument("out", type=Path, help="the file to write")
    parser.add_argument("--command", required=True, help="the `pan train` command that made the run")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint)
    summary_file = args.checkpoint.parent / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    shipped = {key: ckpt[key] for key in ("format", "config", "model", "state", "metrics", "world_size", "lr")}
    shipped.update({"optimizer": None, "accum": None, "rng": None,
                    "provenance": {"command": args.command, "source": args.checkpoint.name, "summary": summary,
                                   "header": json.loads(json.dumps(make_header(torch.device("cpu")), default=str))}})
    atomic_torch_save(shipped, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
