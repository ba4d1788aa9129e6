"""Training images/s of PAN[H]+CTX on this CPU for each layout x precision, the measurement behind the `cpu`
recipe's channels-last + amp="auto" (docs/training-notes.md §1). Each row: `pan.train.budget.measure_images_per_s`
(Adam steps, batch 32, random 100x100 images) repeated --repeats times, median reported.

    python scripts/cpu_train_throughput.py --json benchmarks/results/cpu_<date>_train-throughput.json
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from pan.provenance import make_header
from pan.train.budget import measure_images_per_s
from pan.train.config import TrainConfig
from pan.train.precision import fast_bf16


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for channels_last in (False, True):
        for amp in (False, True):
            config = TrainConfig(model="pan-h-ctx", backend="torch", batch_size=32, amp=amp,
                                 channels_last=channels_last)
            steps = a.steps if not amp or fast_bf16("cpu") else 2  # emulated bf16 is 6-9x slower (AVX2 VM)
            runs = [measure_images_per_s(config, "cpu", steps=steps) for _ in range(a.repeats)]
            rows.append({"channels_last": channels_last, "bf16_autocast": amp, "images_per_s": statistics.median(runs),
                         "runs": runs, "timed_steps": steps})
            print(f"{'channels-last' if channels_last else 'NCHW':13s} {'bf16 autocast' if amp else 'fp32':13s} "
                  f"{rows[-1]['images_per_s']:7.1f} images/s", flush=True)
    result = {"header": {**make_header(torch.device("cpu")), "threads": a.threads,
                         "cpu_capability": torch.backends.cpu.get_cpu_capability(), "fast_bf16": fast_bf16("cpu")},
              "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
