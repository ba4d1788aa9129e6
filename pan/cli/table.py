"""`pan table`: our Table 1 next to the paper's numbers, from `pan eval` JSON files under a directory or from a
committed Table 1 result file (benchmarks/results/table1-*.json); `--write FILE` turns runs into such a file.
Visual Genome runs under the directory are printed first as our Table 2 (pan.evaluation.table2)."""

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


def default_source() -> Path:
    """runs/ when it exists, else the newest Table 1 file committed under benchmarks/results/ of this checkout."""
    committed = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "results").glob("table1-*.json"))
    return Path("runs") if Path("runs").is_dir() or not committed else committed[-1]


def run(args) -> int:
    from pan.evaluation.paper import format_table
    from pan.evaluation.table1 import collect_rows, read_table1, write_table1

    source = Path(args.results) if args.results is not None else default_source()
    if source.is_file():
        try:
            results, header = read_table1(source)
        except ValueError as err:
            print(f"pan table: {err}")
            return 2
        where = (f"from {source} ({header.get('device', '?')}, {str(header.get('date', '?'))[:10]}, "
                 f"git {str(header.get('git_sha', '?'))[:8]})")
    elif source.is_dir():
        results = collect_results(source)
        where = f"under {source}"
    else:
        print(f"pan table: --results {source} is neither a directory of runs nor a Table 1 JSON file")
        return 2
    if source.is_dir():
        from pan.evaluation.table2 import collect_table2, format_table2

        table2 = collect_table2(source)
        if table2:
            print(f"Table 2 (Visual Genome / VOC 2007), {len(table2)} run(s) under {source}; the paper's Table 2 "
                  "numbers are not recorded in this library, so only ours:")
            print(format_table2(table2) + "\n")
    print(format_table(results))
    recipes = sorted({r.get("recipe") for r in results.values() if r.get("recipe")})
    steps = sorted({r.get("steps") for r in results.values() if r.get("steps")})
    extra = f"; recipe {', '.join(recipes)}, {', '.join(map(str, steps))} optimiser steps each" if recipes else ""
    print(f"\n{len(results)} of our results, {where}{extra}; paper numbers in parentheses (BMVC 2018, Table 1).")
    if args.write:
        if not source.is_dir():
            print("pan table: --write collects runs: give --results a directory of runs")
            return 2
        import torch

        from pan.provenance import make_header

        rows = collect_rows(source)
        write_table1(rows, args.write, make_header(torch.device("cpu")))
        print(f"wrote {len(rows)} rows to {args.write}")
    return 0


def register(subparsers, name: str, help: str) -> None:
    p = subparsers.add_parser(name, help=help, description=help)
    p.add_argument("--results", default=None,
                   help="a directory searched for eval*.json files, or a Table 1 JSON file (default: runs/ if it "
                        "exists, else the newest benchmarks/results/table1-*.json)")
    p.add_argument("--write", metavar="FILE", help="also write the runs under --results as a Table 1 JSON file")
    p.set_defaults(func=run)
