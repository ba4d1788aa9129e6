"""Reports: the machine header, the printed table, the JSON file, the speedup plot and a comparison with a base run.

JSON layout (`--json FILE`):
  {"header": {device, torch, triton, cuda, git_sha, date, command, ...},
   "roofline": {device, copy_gbps, matmul_tflops: {dtype: TFLOP/s}, notes} or null,
   "rows": [{op, mode, shape, dtype, provider, median_us, p20_us, p80_us, peak_mem_mb, gbps, tflops,
             speedup_vs_eager, speedup_vs_compile, status, reason, ...}],
   "train": [{variant, images_per_s, peak_mem_mb, ...}]}
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from pan.provenance import make_header  # noqa: F401  (re-exported for pan.bench.cli)


def header_line(header: dict) -> str:
    sha = header["git_sha"][:12] + ("+dirty" if header.get("git_dirty") else "")
    tf32 = header["tf32"]
    return (f"# {header['device']} | CUDA {header['cuda']} | torch {header['torch']} | triton {header['triton']} | "
            f"git {sha} | {header['date']} | tf32 matmul={tf32['matmul']} cudnn={tf32['cudnn']} | "
            f"cuda ext={header['cuda_extension']}")


def _f(value, fmt: str, empty: str = "-") -> str:
    return empty if value is None else format(value, fmt)


def _render(lines: list[list]) -> list[str]:
    """Left-aligned columns (the last one, a free-text status, unpadded) with a rule under the header row."""
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]) - 1)]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line[:-1], widths, strict=True)) + "  " + str(line[-1]))
        if i == 0:
            out.append("-" * (sum(widths) + 2 * len(widths) + 6))
    return out


def format_table(rows: list[dict], roof: dict | None = None) -> str:
    """A fixed-width table of op rows (dicts as in the JSON)."""
    cols = ["op", "mode", "shape", "dtype", "provider", "median us (p20-p80)", "peak MiB", "GB/s (%)",
            "TFLOP/s (%)", "%floor", "vs eager", "vs compile", "status"]
    lines = [cols]
    for r in rows:
        if r["median_us"] is not None:
            t = f"{r['median_us']:.1f} ({r['p20_us']:.1f}-{r['p80_us']:.1f})"
        else:
            t = "-"
        bw = f"{r['gbps']:.1f}" + (f" ({r['pct_of_peak_bw']:.0f}%)" if r.get("pct_of_peak_bw") is not None else "") \
            if r["gbps"] is not None else "-"
        fl = f"{r['tflops']:.3g}" + (f" ({r['pct_of_peak_flops']:.0f}%)" if r.get("pct_of_peak_flops") is not None
                                     else "") if r["tflops"] is not None else "-"
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        lines.append([r["op"], r["mode"], f"{r['shape_name']} {r['shape']}", r.get("precision") or r["dtype"],
                      r["provider"], t, _f(r["peak_mem_mb"], ".1f"), bw, fl, _f(r.get("pct_of_floor"), ".0f"),
                      _f(r["speedup_vs_eager"], ".2f"), _f(r["speedup_vs_compile"], ".2f"), status])
    out = _render(lines)
    if roof:
        rates = ", ".join(f"{k} {v:.3g}" for k, v in roof["matmul_tflops"].items())
        out.append(f"roofline: copy {roof['copy_gbps']:.0f} GB/s; matmul TFLOP/s: {rates}"
                   + (f"; {roof['notes']}" if roof.get("notes") else ""))
    return "\n".join(out)


def format_train_table(results: list[dict]) -> str:
    cols = ["variant", "batch", "median ms (p20-p80)", "images/s", "peak MiB", "vs eager", "mem vs eager", "status"]
    lines = [cols]
    for r in results:
        t = f"{r['median_ms']:.2f} ({r['p20_ms']:.2f}-{r['p80_ms']:.2f})" if r["median_ms"] is not None else "-"
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        lines.append([r["variant"], r["batch"], t, _f(r["images_per_s"], ".0f"), _f(r["peak_mem_mb"], ".0f"),
                      _f(r["speedup_vs_eager"], ".2f"), _f(r["mem_vs_eager"], ".2f"), status])
    out = _render(lines)
    return "\n".join(out)


def write_json(path: str | Path, header: dict, rows: list[dict], roof: dict | None = None,
               train: list[dict] | None = None) -> None:
    doc = {"header": header, "roofline": roof, "rows": rows}
    if train is not None:
        doc["train"] = train
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(value):
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sanitize(rows: list[dict]) -> list[dict]:
    """Replace inf/nan floats (e.g. an error of inf for a NaN output) by strings, so the JSON stays strict."""
    out = []
    for r in rows:
        clean = {}
        for k, v in r.items():
            clean[k] = str(v) if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) else v
        out.append(clean)
    return out


def compare_with_base(rows: list[dict], base_path: str | Path) -> list[str]:
    """Lines "op mode shape dtype provider: base -> now us (x speedup)" for rows timed in both runs."""
    base = json.loads(Path(base_path).read_text())
    key = lambda r: (r["op"], r["mode"], r.get("shape_name"), r["shape"], r["dtype"], r["provider"])
    base_rows = {key(r): r for r in base["rows"] if r.get("median_us") is not None}
    sha = base.get("header", {}).get("git_sha", "?")[:12]
    lines = [f"vs base {base_path} (git {sha}):"]
    for r in rows:
        b = base_rows.get(key(r))
        if b is None or r["median_us"] is None:
            continue
        lines.append(f"  {r['op']} {r['mode']} {r.get('shape_name')} {r['dtype']} {r['provider']}: "
                     f"{b['median_us']:.1f} -> {r['median_us']:.1f} us ({b['median_us'] / r['median_us']:.2f}x)")
    return lines


def plot_speedups(rows: list[dict], path: str | Path, title: str = "") -> None:
    """Bars of speedup vs eager per (op, shape, dtype), one panel per mode, one bar per non-eager provider."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("fwd", "bwd", "fwd+bwd") if any(r["mode"] == m for r in rows)] or ["fwd"]
    providers = sorted({r["provider"] for r in rows if r["provider"] != "eager"})
    fig, axes = plt.subplots(len(modes), 1, figsize=(max(6.0, 1.2 * len(rows) / max(len(modes), 1)), 3.2 * len(modes)),
                             squeeze=False)
    for ax, mode in zip(axes[:, 0], modes, strict=True):
        groups = []
        for r in rows:
            g = (r["op"], r.get("shape_name") or r["shape"], r["dtype"])
            if r["mode"] == mode and g not in groups:
                groups.append(g)
        width = 0.8 / max(len(providers), 1)
        for i, provider in enumerate(providers):
            values = []
            for g in groups:
                match = [r for r in rows if r["mode"] == mode and r["provider"] == provider
                         and (r["op"], r.get("shape_name") or r["shape"], r["dtype"]) == g]
                values.append(match[0]["speedup_vs_eager"] if match and match[0]["speedup_vs_eager"] else None)
            xs = [j + i * width for j in range(len(groups))]
            ax.bar([x for x, v in zip(xs, values, strict=True) if v], [v for v in values if v], width,
                   label=provider if any(values) else None, color=f"C{i}")
            for x, v in zip(xs, values, strict=True):
                if not v:  # skipped, refused or failed: say so instead of drawing a bar
                    ax.text(x, 1.0, f"{provider}: n/a", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xlim(-0.5, len(groups) - 0.3)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        _plain_speedup_axis(ax, [r["speedup_vs_eager"] for r in rows if r["mode"] == mode
                                 and r["provider"] != "eager" and r["speedup_vs_eager"]])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
        ax.set_xticklabels([f"{op}\n{shape} {dtype}" for op, shape, dtype in groups], fontsize=7)
        ax.set_ylabel(f"{mode}: speedup vs eager")
        ax.legend(fontsize=7)
    if title:  # wrapped to the figure's width (about 0.55 em per character), so no end is cut off
        width = max(20, int(fig.get_figwidth() * 72 / (0.55 * 8)))
        fig.suptitle("\n".join(textwrap.fill(line, width) for line in title.splitlines()), fontsize=8)
    fig.set_layout_engine("constrained")
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)


def _plain_speedup_axis(ax, speedups: list[float]) -> None:
    """Log-scale speedups labelled as plain numbers ("1.25x", not "1.25x10^0"); minor ticks are labelled only when
    the bars and the 1x line span less than a decade, where no major tick but 1 would show."""
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}x")
    ax.yaxis.set_major_formatter(plain)
    lo, hi = min([1.0, *speedups]), max([1.0, *speedups])
    if hi / lo < 10:
        ax.yaxis.set_minor_formatter(plain)
    else:  # wider: 2x and 5x of each decade only, so the labels do not crowd
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}x" if f"{v:.0e}"[0] in "25" else ""))
