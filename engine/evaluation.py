"""`llmlab eval`: score a model folder on lm-evaluation-harness tasks and keep the scores beside it.

The model and its tokenizer load through engine.factory (our own registered classes, adapters
baked in; never remote code) and go to lm-eval as objects (engine.eval_harness). Tasks are
lm-eval's by name (hellaswag, arc_easy, ...: their data comes from the hub) or defined by YAML
files in an include folder over local data; LLM-Lab's own tasks (EVAL_TASKS_DIR, e.g.
`demo_facts`, the demo world's facts) are always included. The scores go to
`<model>/eval/results.json` (engine.project.eval_results), one entry per task; `log_samples`
also writes every scored document with lm-eval's inputs and answers to
`<model>/eval/samples-<task>.jsonl`.

Progress is `phase` events: the model, the tasks, then each request type's requests scored.
lm-eval is an optional extra: without it the evaluation is refused with the line that installs it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path

from engine.events import Phases
from engine.project.eval_results import results_file, store_results
from engine.project.fileio import atomic_write_text
from engine.project.layout import EVAL_DIR
from engine.project.problems import LLMLabError

MISSING = 'llmlab eval needs lm-evaluation-harness: pip install -e ".[eval]"'
EVAL_TASKS_DIR = Path(__file__).parent / "eval_tasks"  # LLM-Lab's own task definitions and their data
REQUESTS = {
    "loglikelihood": "scoring choices",
    "loglikelihood_rolling": "scoring texts",
    "generate_until": "generating",
}


def check_installed() -> None:
    if importlib.util.find_spec("lm_eval") is None:
        raise LLMLabError(MISSING)


def task_names(text: str | list[str]) -> list[str]:
    """`hellaswag,arc_easy` (or a list) → the names, in order, each once; none is refused."""
    parts = text.split(",") if isinstance(text, str) else text
    names = list(dict.fromkeys(name.strip() for name in parts if name.strip()))
    if not names:
        raise LLMLabError("--tasks: name at least one task, e.g. --tasks demo_facts or --tasks hellaswag,arc_easy")
    return names


def evaluate(
    model_dir: str | Path,
    tasks: str | list[str],
    limit: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    include_path: str | list[str] | None = None,
    log_samples: bool = False,
    emit: Callable[[dict], None] | None = None,
) -> dict:
    """Run lm-eval's `simple_evaluate` on `model_dir` and store the scores; returns {"model",
    "results" (the results file), "tasks": {task: entry}}."""
    names = task_names(tasks)
    _check_numbers(limit, batch_size)
    includes = _include_paths(include_path)
    check_installed()  # before torch is imported: a missing extra says so at once
    import datasets
    import transformers
    from lm_eval import simple_evaluate

    from engine import eval_harness
    from engine.device import pick_device
    from engine.factory import load_merged_model
    from engine.tokenizer import saved_tokenizer

    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its notes on every default it fills in
    transformers.utils.logging.disable_progress_bar()  # the phase events say where the evaluation is
    datasets.disable_progress_bars()
    phases = Phases(emit)
    phases.begin("model", f"loading {model_dir}")
    model = load_merged_model(model_dir, pick_device(device))
    tokenizer = saved_tokenizer(model_dir)

    def progress(kind: str, done: int, total: int) -> None:
        if done == 0:
            phases.begin("requests", f"{REQUESTS.get(kind, kind)}: {total:,} {kind} requests")
        phases.progress(REQUESTS.get(kind, kind), done, total, "requests")

    lm = eval_harness.wrap_model(model, tokenizer, batch_size, progress)
    phases.begin("tasks", f"loading the tasks {', '.join(names)}")
    manager = eval_harness.task_manager(names, includes)
    results = simple_evaluate(
        model=lm,
        tasks=eval_harness.task_specs(manager, names, includes),
        task_manager=manager,
        limit=limit,
        log_samples=log_samples,
    )
    entries = eval_harness.task_entries(results, lm, limit)
    if log_samples:
        for task, samples in results["samples"].items():
            _write_samples(Path(model_dir) / EVAL_DIR / f"samples-{task}.jsonl", samples)
    store_results(model_dir, entries)
    return {"model": str(model_dir), "results": str(results_file(model_dir)), "tasks": entries}


def _check_numbers(limit, batch_size) -> None:
    if limit is not None and limit < 1:
        raise LLMLabError(f"--limit: must be at least 1 document per task, got {limit}")
    if batch_size < 1:
        raise LLMLabError(f"--batch-size: must be at least 1, got {batch_size}")


def _include_paths(include_path: str | list[str] | None) -> list[Path]:
    """LLM-Lab's own tasks, then each folder given; a folder that is not there is refused by name."""
    given = [include_path] if isinstance(include_path, str) else list(include_path or [])
    paths = [Path(p).expanduser() for p in given if p]
    for path in paths:
        if not path.is_dir():
            raise LLMLabError(f"--include-path: {path} is not a folder of lm-eval task files")
    return [EVAL_TASKS_DIR, *paths]


def _write_samples(path: Path, samples: list[dict]) -> None:
    from lm_eval.utils import handle_non_serializable

    lines = (json.dumps(sample, default=handle_non_serializable, ensure_ascii=False) + "\n" for sample in samples)
    atomic_write_text(path, "".join(lines))
