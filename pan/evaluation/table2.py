"""Our Table 2 (paper §4.2): per Visual Genome run, the attribute mAP (frequency-weighted VOC AP) and attention TPR
on the Visual Genome test split (against boxes) and on VOC 2007 (against masks), from `pan eval` JSON files.

The paper's Table 2 numbers are not recorded in this library (docs/design.md records Table 1 only), so the table
shows ours.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["collect_table2", "format_table2"]


def collect_table2(root: str | Path) -> list[dict]:
    """One row per run directory under root whose config.json is a real-image run: model, prior, and the metrics
    (in %) of its eval_vg_test.json and eval_voc07_*.json when present; sorted by model and prior."""
    rows = []
    for config_path in sorted(Path(root).rglob("config.json")):
        config = json.loads(config_path.read_text())
        if config.get("kind") != "real-images":
            continue
        run = config_path.parent
        row = {"model": config["model"], "prior": bool(config.get("prior")), "run": str(run),
               "vg_weighted_map": None, "vg_tpr": None, "voc07_tpr": None}
        vg = run / "eval_vg_test.json"
        if vg.is_file():
            result = json.loads(vg.read_text())
            row.update(vg_weighted_map=round(100 * result["weighted_map"], 2), vg_tpr=round(100 * result["tpr"], 2))
        for voc in sorted(run.glob("eval_voc07_*.json")):
            row["voc07_tpr"] = round(100 * json.loads(voc.read_text())["tpr"], 2)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["model"], r["prior"]))


def format_table2(rows: list[dict]) -> str:
    """A markdown table of collect_table2's rows ("—" where an evaluation is missing)."""
    def cell(v):
        return "—" if v is None else f"{v:.2f}"

    lines = ["| model | prior | VG weighted mAP % | VG TPR % | VOC 2007 TPR % |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {'w/' if r['prior'] else 'w/o'} | {cell(r['vg_weighted_map'])} | "
                     f"{cell(r['vg_tpr'])} | {cell(r['voc07_tpr'])} |")
    return "\n".join(lines)
