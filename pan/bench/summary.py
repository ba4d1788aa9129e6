"""Markdown summaries of `--json` files for benchmarks/RESULTS.md, and the issue's targets checked against them.

    python -m pan.bench.summary benchmarks/results/h100_2026-12-01_ops-fp32.json [more.json ...] > summary.md

Only measured numbers appear: a provider that was skipped, refused or failed shows its status instead of a time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KERNELS = ("triton", "cuda")

# The goals this benchmark makes measurable (H100, fp32 with TF32); reaching them is later work.
# (description, op, mode, shape_name, kind, threshold)
OP_TARGETS = (
    ("gate fwd >= 4x eager", "progressive_attention", "fwd", "MREF-49", "vs_eager", 4.0),
    ("gate fwd+bwd >= 3x eager", "progressive_attention", "fwd+bwd", "MREF-49", "vs_eager", 3.0),
    ("gate fwd+bwd >= 1.5x compile", "progressive_attention", "fwd+bwd", "MREF-49", "vs_compile", 1.5),
    ("gate fwd within 1.5x of the HBM floor", "progressive_attention", "fwd", "MREF-49", "floor", 1.5),
    ("gate fwd+bwd within 1.5x of the HBM floor", "progressive_attention", "fwd+bwd", "MREF-49", "floor", 1.5),
    ("VG marginal fwd >= 4x eager", "hard_attention_marginal", "fwd", "VG-14", "vs_eager", 4.0),
    ("VG marginal fwd+bwd >= 4x eager", "hard_attention_marginal", "fwd+bwd", "VG-14", "vs_eager", 4.0),
)
TRAIN_TARGETS = (("training >= 2x eager images/s", "speedup_vs_eager", 2.0, True),
                 ("training <= 0.6x eager peak memory", "mem_vs_eager", 0.6, False))


def _us(row: dict | None) -> str:
    if row is None:
        return "-"
    if row.get("median_us") is None:
        return row["status"].split(":")[0]
    return f"{row['median_us']:.1f}"


def _x(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _best_kernel(rows: list[dict]) -> dict | None:
    timed = [r for r in rows if r["provider"] in KERNELS and r.get("median_us") is not None]
    return min(timed, key=lambda r: r["median_us"]) if timed else None


def _groups(rows: list[dict]) -> dict:
    groups: dict = {}
    for r in rows:
        key = (r["op"], r["mode"], r.get("shape_name", ""), r["shape"], r.get("precision") or r["dtype"])
        groups.setdefault(key, []).append(r)
    return groups


def ops_table(rows: list[dict]) -> list[str]:
    lines = ["| op | mode | shape | precision | eager µs | compile µs | triton µs | cuda µs | best kernel vs eager | "
             "vs compile | floor µs | best % of floor | peak MiB eager / best |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (op, mode, name, shape, precision), group in _groups(rows).items():
        by = {r["provider"]: r for r in group}
        best = _best_kernel(group)
        eager = by.get("eager")
        floor = next((r.get("floor_us") for r in group if r.get("floor_us")), None)
        mem = "-"
        if eager and eager.get("peak_mem_mb") is not None and best and best.get("peak_mem_mb") is not None:
            mem = f"{eager['peak_mem_mb']:.0f} / {best['peak_mem_mb']:.0f}"
        vs_eager = "-" if best is None else f"{_x(best.get('speedup_vs_eager'))} ({best['provider']})"
        vs_compile = "-" if best is None else _x(best.get("speedup_vs_compile"))
        floor_text = "-" if floor is None else f"{floor:.1f}"
        pct = "-" if best is None or best.get("pct_of_floor") is None else f"{best['pct_of_floor']:.0f}%"
        lines.append(
            f"| {op} | {mode} | {name} {shape} | {precision} | {_us(eager)} | {_us(by.get('compile'))} | "
            f"{_us(by.get('triton'))} | {_us(by.get('cuda'))} | {vs_eager} | {vs_compile} | {floor_text} | {pct} | "
            f"{mem} |")
    return lines


def train_table(train: list[dict]) -> list[str]:
    lines = ["| variant | batch | median ms (p20-p80) | images/s | peak MiB | vs eager | memory vs eager | status |",
             "|---|---|---|---|---|---|---|---|"]
    for r in train:
        t = "-" if r.get("median_ms") is None else f"{r['median_ms']:.2f} ({r['p20_ms']:.2f}-{r['p80_ms']:.2f})"
        ips = "-" if r.get("images_per_s") is None else f"{r['images_per_s']:.0f}"
        mem = "-" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason') or ''}"
        lines.append(f"| {r['variant']} | {r['batch']} | {t} | {ips} | {mem} | {_x(r.get('speedup_vs_eager'))} | "
                     f"{_x(r.get('mem_vs_eager'))} | {status} |")
    return lines


def check_targets(rows: list[dict], train: list[dict] | None) -> list[tuple[str, str, str]]:
    """(target, measured, "met" / "not met" / "not measured") for each target the documents can speak to."""
    out = []
    groups = _groups(rows)
    for text, op, mode, name, kind, threshold in OP_TARGETS:
        group = [r for key, g in groups.items() if key[:3] == (op, mode, name) and "float32" in key[4] for r in g]
        best = _best_kernel(group)
        if best is None:
            out.append((text, "-", "not measured"))
            continue
        if kind == "floor":
            floor = best.get("floor_us")
            if not floor:
                out.append((text, "-", "not measured"))
                continue
            ratio = best["median_us"] / floor
            verdict = "met" if ratio <= threshold else "not met"
            out.append((text, f"{ratio:.2f}x the floor ({best['provider']})", verdict))
            continue
        value = best.get("speedup_vs_eager" if kind == "vs_eager" else "speedup_vs_compile")
        if value is None:
            out.append((text, "-", "not measured"))
            continue
        out.append((text, f"{value:.2f}x ({best['provider']})", "met" if value >= threshold else "not met"))
    for text, field, threshold, higher in TRAIN_TARGETS:
        measured = [r for r in train or [] if r["backend"] in KERNELS and r.get(field) is not None]
        if not measured:
            out.append((text, "-", "not measured"))
            continue
        best = max(measured, key=lambda r: r[field]) if higher else min(measured, key=lambda r: r[field])
        ok = best[field] >= threshold if higher else best[field] <= threshold
        out.append((text, f"{best[field]:.2f}x ({best['variant']})", "met" if ok else "not met"))
    return out


def summarize(paths: list[str | Path]) -> str:
    """A markdown section per JSON file, then the targets over all of them."""
    parts, all_rows, all_train = [], [], []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        h = doc["header"]
        parts.append(f"### {Path(path).name}\n")
        parts.append(f"{h['device']} | CUDA {h.get('cuda')} | torch {h['torch']} | triton {h.get('triton')} | "
                     f"git `{h['git_sha'][:12]}`{' (dirty)' if h.get('git_dirty') else ''} | {h['date']} | "
                     f"TF32 matmul={h['tf32']['matmul']} cudnn={h['tf32']['cudnn']}\n")
        parts.append(f"Command: `{h['command']}`\n")
        roof = doc.get("roofline")
        if roof:
            rates = ", ".join(f"{k} {v:.3g}" for k, v in roof["matmul_tflops"].items())
            parts.append(f"Measured ceilings: copy {roof['copy_gbps']:.0f} GB/s; matmul TFLOP/s {rates}.\n")
        if doc.get("rows"):
            parts += ops_table(doc["rows"]) + [""]
            all_rows += doc["rows"]
        if doc.get("train"):
            parts += train_table(doc["train"]) + [""]
            all_train += doc["train"]
    parts += ["### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    parts += [f"| {t} | {m} | {v} |" for t, m, v in check_targets(all_rows, all_train)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m pan.bench.summary FILE.json [FILE.json ...]", file=sys.stderr)
        return 2
    sys.stdout.write(summarize(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
