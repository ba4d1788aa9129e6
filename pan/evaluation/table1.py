"""Our Table 1 as a result file: rows collected from `pan train` + `pan eval` runs, written with a run header.

File format (``benchmarks/results/table1-cpu-<date>.json``)::

    {"header": {device, versions, git SHA, date, command, ...},
     "rows": [{"model", "dataset", "accuracy", "tpr", "scale_acc", "steps", "seed", "backend", "recipe",
               "num_examples", "run"}]}

``accuracy`` and ``tpr`` are in %, ``scale_acc`` maps each target-scale bin to its accuracy in % (None: empty bin).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["collect_rows", "write_table1", "read_table1"]

def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def collect_rows(root: str | Path, split: str = "test") -> list[dict]:
    """One row per run directory under ``root`` holding ``config.json``, ``summary.json`` and an
    ``eval_<dataset>_<split>.json`` of its own dataset; sorted by dataset then model."""
    rows = []
    for config_path in sorted(Path(root).rglob("config.json")):
        run = config_path.parent
        config = json.loads(config_path.read_text())
        if config.get("kind") == "real-images":  # Visual Genome runs belong to Table 2 (pan.evaluation.table2)
            continue
        eval_path = run / f"eval_{config['dataset']}_{split}.json"
        summary_path = run / "summary.json"
        if not (eval_path.is_file() and summary_path.is_file()):
            continue
        result, summary = json.loads(eval_path.read_text()), json.loads(summary_path.read_text())
        rows.append({
            "model": config["model"], "dataset": config["dataset"], "accuracy": _pct(result["accuracy"]),
            "tpr": _pct(result["tpr"]),
            "scale_acc": {k: _pct(v["accuracy"]) for k, v in result["accuracy_by_scale"].items()},
            "steps": summary["steps"], "seed": config["seed"], "backend": result.get("backend", config["backend"]),
            "recipe": config.get("recipe", "paper"), "num_examples": result["num_examples"], "run": str(run),
        })
    return sorted(rows, key=lambda r: (r["dataset"], r["model"]))


def write_table1(rows: list[dict], path: str | Path, header: dict) -> None:
    """Write ``{"header": header, "rows": rows}`` as indented JSON."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"header": header, "rows": rows}, indent=2) + "\n")


def read_table1(path: str | Path) -> tuple[dict[tuple[str, str], dict], dict]:
    """(results, header) of a Table 1 file: results maps (model, dataset) to its row with "accuracy" and "tpr" as
    fractions (what ``format_table`` takes); ``ValueError`` naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        rows = data["rows"]
        results = {(r["model"], r["dataset"]): {**r, "accuracy": r["accuracy"] / 100, "tpr": r["tpr"] / 100}
                   for r in rows}
        return results, data.get("header", {})
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a Table 1 result file ({type(err).__name__}: {err})") from err
