"""`llmlab compare RUN RUN ... [--json]` / `llmlab compare --sweep SWEEP`: the runs' final measures
and the settings that differ between them (engine/project/compare.py)."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="final measures and setting differences of runs")
    parser.add_argument("runs", nargs="*", metavar="RUN", help="run folders (PROJECT/runs/<stage>-<stamp>)")
    parser.add_argument("--sweep", metavar="SWEEP", help="a sweep's folder (PROJECT/sweeps/<id>): its members")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(func=main)


def main(args) -> int:
    from engine.project.compare import comparison
    from engine.project.problems import LLMLabError, Problem
    from engine.project.sweeps import sweep_runs

    runs = list(args.runs) + (sweep_runs(args.sweep) if args.sweep else [])
    if len(runs) < 1:
        raise LLMLabError(Problem("RUN", "name at least one run folder, or --sweep SWEEP"))
    found = comparison(runs)
    print(json.dumps(found, indent=2) if args.json else "\n".join(table_lines(found)))
    return 0


def table_lines(found: dict) -> list[str]:
    """The comparison as text: the runs numbered, then a column per run for each measure and each
    differing setting."""
    from engine.project.compare import format_value

    runs = found["runs"]
    lines = [f"[{n}] {run['run']} ({run['state']})" for n, run in enumerate(runs, 1)]
    rows = [[measure] + [format_value(run["final"].get(measure)) for run in runs] for measure in found["measures"]]
    settings = [[key] + [format_value(value) for value in values] for key, values in found["differences"].items()]
    header = ["final"] + [f"[{n}]" for n in range(1, len(runs) + 1)]
    lines += ["", *_aligned([header, *rows])]
    lines += ["", *_aligned([["differs"] + header[1:], *settings])] if settings else ["", "no settings differ"]
    return lines


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
