"""`pan table`: our Table 1 (from `pan eval` JSON files) next to the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path


def collect_results(root: Path) -> dict[tuple[str, str], dict]:
    """(model, dataset) -> the evaluation dict of every `pan eval` JSON under root (test split preferred)."""
    results: dict[tuple[str, str], dict] = {}
    for path in sorted(root.rglob("eval*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"pan table: cannot read {path}: {err}") from err
        if not {"model", "dataset", "accuracy", "tpr"} <= data.keys():
            continue
        key = (data["model"], data["dataset"])
        if key not in results or data.get("split") == "test":
            results[key] = data
    return results


def run(args) -> int:
    from pan.evaluation.paper import format_table

    root = Path(args.results)
    if not root.is_dir():
        print(f"pan table: --results {root} is not a directory")
        return 2
    results = collect_results(root)
    print(format_table(results))
    print(f"\n{len(results)} of our results found under {root}; paper numbers in parentheses (BMVC 2018, Table 1).")
    return 0


def register(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--results", default="runs", help="directory searched for eval*.json files (default: runs)")
    p.set_defaults(func=run)
