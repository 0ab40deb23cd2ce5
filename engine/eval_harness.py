"""What LLM-Lab hands lm-evaluation-harness (lm-eval): the model, already loaded by engine.factory, in
lm-eval's Hugging Face wrapper; the task index; each task's result as a plain entry.

Imports lm_eval at the top: engine.evaluation imports this module only once lm-eval is known to be
installed. Nothing here loads a model or a tokenizer from a name: `HFLM(pretrained=model,
tokenizer=tokenizer)` takes the objects as they are, so no remote code can run.

- `ProgressLM` scores requests in slices and reports each slice done, so a long evaluation shows
  its progress (lm-eval's own progress is a tqdm bar on stderr). Every request is still scored by
  HFLM's own code, batched and sorted by length within its slice.
- `task_manager` indexes only the include folders when they hold every task asked for: indexing
  lm-eval's thousands of built-in task files takes ~10 s.
- `task_specs`: a task defined in an include folder whose `dataset_kwargs.data_files` are
  relative paths reads them from the folder of its YAML file (lm-eval would read them from the
  working directory), so a task folder can be moved or shipped with its data.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from pathlib import Path

from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from lm_eval.tasks._index import Kind
from lm_eval.tasks._yaml_loader import load_yaml

from engine.project.eval_results import metric_name
from engine.project.problems import LLMLabError

SLICES = 100  # a request type's requests are scored in about this many slices ...
MIN_SLICE = 256  # ... of at least this many requests (fewer, larger batches of lengths sorted together)
NOT_METRICS = {"alias", "name", "sample_len"}


class ProgressLM(HFLM):
    """HFLM that calls `progress(request_type, done, total)` before its first slice and after each."""

    def __init__(self, *args, progress: Callable[[str, int, int], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress or (lambda kind, done, total: None)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._sliced("loglikelihood", super().loglikelihood, requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._sliced("loglikelihood_rolling", super().loglikelihood_rolling, requests)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._sliced("generate_until", super().generate_until, requests)

    def _sliced(self, kind: str, score, requests: list) -> list:
        size = max(MIN_SLICE, math.ceil(len(requests) / SLICES))
        answers: list = []
        self.progress(kind, 0, len(requests))
        for start in range(0, len(requests), size):
            answers += score(requests[start : start + size], disable_tqdm=True)
            self.progress(kind, len(answers), len(requests))
        return answers


def wrap_model(model, tokenizer, batch_size: int, progress=None) -> ProgressLM:
    """Our loaded model and tokenizer as lm-eval's causal LM (no loading by name, no remote code)."""
    return ProgressLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size, progress=progress)


def task_manager(tasks: list[str], include_paths: list[Path]) -> TaskManager:
    """The include folders' index when it holds every one of `tasks`, else the built-in tasks' too;
    a name neither knows is refused, naming the closest known names."""
    local = TaskManager(include_path=[str(p) for p in include_paths], include_defaults=False)
    if all(name in local.all_tasks for name in tasks):
        return local
    manager = TaskManager(include_path=[str(p) for p in include_paths])
    unknown = [name for name in tasks if name not in manager.all_tasks]
    if unknown:
        hints = "; ".join(
            f"{name!r} (closest: {', '.join(difflib.get_close_matches(name, manager.all_tasks, 3)) or 'none'})"
            for name in unknown
        )
        raise LLMLabError(
            f"--tasks: lm-eval knows no task {hints}; `lm-eval ls tasks` lists them, --include-path adds a folder"
        )
    return manager


def task_specs(manager: TaskManager, tasks: list[str], include_paths: list[Path]) -> list[str | dict]:
    """What to ask lm-eval to load: each name, or for a task defined in an include folder with
    relative data_files, its configuration with those paths made absolute from its YAML's folder."""
    roots = [p.resolve() for p in include_paths]
    specs: list[str | dict] = []
    for name in tasks:
        entry = manager.task_index.get(name)
        yaml_path = entry.yaml_path if entry is not None and entry.kind is Kind.TASK else None
        if yaml_path is None or not any(yaml_path.resolve().is_relative_to(root) for root in roots):
            specs.append(name)
            continue
        config = load_yaml(yaml_path)
        files = (config.get("dataset_kwargs") or {}).get("data_files")
        if files is None:
            specs.append(name)
            continue
        config["dataset_kwargs"] = {**config["dataset_kwargs"], "data_files": _resolved(files, yaml_path.parent)}
        specs.append(config)
    return specs


def _resolved(files, folder: Path):
    """data_files (a path, a list of paths, or {split: path or paths}) with relative paths under `folder`."""
    if isinstance(files, dict):
        return {split: _resolved(paths, folder) for split, paths in files.items()}
    if isinstance(files, list):
        return [_resolved(path, folder) for path in files]
    return str(folder / Path(files).expanduser())  # an absolute path stays as it is


def task_entries(results: dict, lm: HFLM, limit: int | None) -> dict[str, dict]:
    """{task: entry} from simple_evaluate's results with `lm`, the model that answered them
    (engine.project.eval_results describes an entry)."""
    entries = {}
    for task, found in results["results"].items():
        metrics = {
            metric_name(key): value if isinstance(value, (int, float)) else None
            for key, value in found.items()
            if key not in NOT_METRICS
        }
        entries[task] = {
            "metrics": metrics,
            "samples": (results.get("n-samples") or {}).get(task, {}).get("effective"),
            "num_fewshot": (results.get("n-shot") or {}).get(task),
            "limit": limit,
            "batch_size": lm.batch_size,
            "device": str(lm.device),
            "version": (results.get("versions") or {}).get(task),
            "lm_eval": results.get("lm_eval_version"),
            "time": results.get("date"),
        }
    return entries
