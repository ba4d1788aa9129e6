"""`pan table`: our Table 1 next to the paper's numbers, from `pan eval` JSON files under a directory or from a
committed Table 1 result file (benchmarks/results/table1-*.json); `--write FILE` turns runs into such a file.
Visual Genome runs under the directory are printed first as our Table 2 (pan.evaluation.table2).

When several evaluations of one model on one dataset lie under the directory, the table shows one: the test split
before the others, then the most recently written; a line under the table names the one shown and the others."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pan.cli.outputs import OutputError, check_file


def _fail(message: str) -> int:
    print(f"pan table: error: {message}", file=sys.stderr)
    return 2


def collect_all(root: Path) -> dict[tuple[str, str], list[tuple[Path, dict]]]:
    """(model, dataset) -> [(path, evaluation dict)] of every `pan eval` JSON under root (not those of a
    ``--data-file``), the one to show first (test split first, then the newest file); ``ValueError`` naming a file
    that cannot be read."""
    found: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for path in sorted(root.rglob("eval*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read {path}: {err}") from None
        if not isinstance(data, dict) or not {"model", "dataset", "accuracy", "tpr"} <= data.keys():
            continue
        if "data_file" in data:  # `pan eval --data-file`: other examples than the paper's split, not a table cell
            continue
        found.setdefault((data["model"], data["dataset"]), []).append((path, data))
    for entries in found.values():
        entries.sort(key=lambda e: (e[1].get("split") != "test", -e[0].stat().st_mtime, str(e[0])))
    return found


def collect_results(root: Path) -> dict[tuple[str, str], dict]:
    """(model, dataset) -> the evaluation dict shown for it (see `collect_all`)."""
    return {key: entries[0][1] for key, entries in collect_all(root).items()}


def _choices(found: dict[tuple[str, str], list[tuple[Path, dict]]]) -> list[str]:
    """One line per (model, dataset) with several evaluations: which is shown and why, and the others."""
    lines = []
    for (model, dataset), entries in sorted(found.items()):
        if len(entries) < 2:
            continue
        shown, data = entries[0]
        why = "the test split, newest" if data.get("split") == "test" else "newest"
        others = ", ".join(f"{p} ({d.get('split')}, {100 * d['accuracy']:.2f} / {100 * d['tpr']:.2f})"
                           for p, d in entries[1:])
        lines.append(f"{model}/{dataset}: {len(entries)} evaluations; shown {shown} ({why}); also {others}")
    return lines


def default_source() -> Path:
    """runs/ when it exists, else the newest Table 1 file committed under benchmarks/results/ of this checkout."""
    committed = sorted((Path(__file__).resolve().parents[2] / "benchmarks" / "results").glob("table1-*.json"))
    return Path("runs") if Path("runs").is_dir() or not committed else committed[-1]


def run(args) -> int:
    from pan.evaluation.paper import format_table
    from pan.evaluation.table1 import collect_rows, read_table1, write_table1

    source = Path(args.results) if args.results is not None else default_source()
    if not source.exists():
        return _fail(f"--results {source}: no such file or directory")
    if not (source.is_file() or source.is_dir()):
        return _fail(f"--results {source} is neither a directory of runs nor a Table 1 JSON file")
    if args.write:
        if not source.is_dir():
            return _fail("--write collects runs: give --results a directory of runs")
        try:
            check_file(args.write, "--write", overwrite=args.overwrite, suffix=".json")
        except OutputError as err:
            return _fail(str(err))
    notes: list[str] = []
    if source.is_file():
        try:
            results, header = read_table1(source)
        except ValueError as err:
            return _fail(f"--results {err}")
        where = (f"from {source} ({header.get('device', '?')}, {str(header.get('date', '?'))[:10]}, "
                 f"git {str(header.get('git_sha', '?'))[:8]})")
    else:
        try:
            found = collect_all(source)
        except ValueError as err:
            return _fail(f"--results {source}: {err}")
        results = {key: entries[0][1] for key, entries in found.items()}
        notes = _choices(found)
        where = f"under {source}"
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
    for line in notes:
        print(line)
    if args.write:
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing --write file")
    p.set_defaults(func=run)
