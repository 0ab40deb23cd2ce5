"""A model's lm-eval scores on disk, torch-free: `<model directory>/eval/results.json`.

`llmlab eval` (engine.evaluation) writes one entry per task, replacing that task's earlier entry
and keeping the others, so scores on several tasks gathered one run at a time sit side by side:

    {"model": "<model directory>",
     "tasks": {"demo_facts": {"metrics": {"acc": 0.61, "acc_stderr": 0.04, ...},
                              "samples": 170, "num_fewshot": 0, "limit": null,
                              "batch_size": 8, "device": "cpu", "version": 1.0,
                              "lm_eval": "0.4.13", "time": 1764638000.0}}}

A metric's name is lm-eval's without its filter when the filter is lm-eval's default ("none"),
else `metric (filter)`, e.g. `exact_match (strict-match)`. Compare reads `measures`: each
task's metrics, stderr left out, as `<task> <metric>` ("demo_facts acc").
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.project.fileio import atomic_write_text
from engine.project.layout import EVAL_DIR, EVAL_RESULTS
from engine.project.problems import LLMLabError

STDERR_SUFFIX = "_stderr"


def results_file(model_dir: str | Path) -> Path:
    return Path(model_dir) / EVAL_DIR / EVAL_RESULTS


def read_results(model_dir: str | Path) -> dict:
    """The model's stored results ({"tasks": {}} when it has none); a damaged file is refused by name."""
    file = results_file(model_dir)
    if not file.is_file():
        return {"model": str(model_dir), "tasks": {}}
    try:
        found = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise LLMLabError(f"{file}: not a results file llmlab eval can read ({error})") from error
    if not isinstance(found, dict) or not isinstance(found.get("tasks"), dict):
        raise LLMLabError(f'{file}: not a results file llmlab eval can read (no "tasks" table)')
    return found


def store_results(model_dir: str | Path, tasks: dict[str, dict]) -> Path:
    """Add `tasks` ({task: entry}) to the model's results, replacing those tasks' earlier entries
    (an atomic write: a crash leaves the previous file whole)."""
    results = read_results(model_dir)
    results["model"] = str(model_dir)
    results["tasks"].update(tasks)
    file = results_file(model_dir)
    atomic_write_text(file, json.dumps(results, indent=2) + "\n")
    return file


def metric_name(key: str) -> str:
    """lm-eval's `acc,none` → `acc`; `exact_match,strict-match` → `exact_match (strict-match)`."""
    metric, _, kept = key.partition(",")
    return metric if kept in ("", "none") else f"{metric} ({kept})"


def measures(model_dir: str | Path) -> dict[str, float]:
    """{"<task> <metric>": value} of every stored task, stderr left out; {} for a model never evaluated
    or a results file that cannot be read (Compare shows what it can)."""
    try:
        tasks = read_results(model_dir)["tasks"]
    except LLMLabError:
        return {}
    return {
        f"{task} {metric}": float(value)
        for task, entry in sorted(tasks.items())
        for metric, value in (entry.get("metrics") or {}).items()
        if not metric.endswith(STDERR_SUFFIX) and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def results_table(tasks: dict[str, dict]) -> list[str]:
    """`tasks` ({task: entry}) as a Markdown table, a row per metric with its stderr beside it."""
    rows = [["task", "version", "shots", "samples", "metric", "value", "stderr"]]
    for task, entry in tasks.items():
        metrics = entry.get("metrics") or {}
        first = [task, str(entry.get("version", "—")), _cell(entry.get("num_fewshot")), _cell(entry.get("samples"))]
        for metric, value in metrics.items():
            if metric.endswith(STDERR_SUFFIX):
                continue
            rows.append([*first, metric, _cell(value), _cell(metrics.get(f"{metric}{STDERR_SUFFIX}"))])
            first = ["", "", "", ""]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 2, 3, 5, 6}
    lines = [
        "| " + " | ".join(_pad(cell, w, i in right) for i, (cell, w) in enumerate(zip(row, widths))) + " |"
        for row in rows
    ]
    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return [lines[0], rule, *lines[1:]]


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _pad(cell: str, width: int, right: bool) -> str:
    return cell.rjust(width) if right else cell.ljust(width)
