"""The one-shot tools the app runs in a worker process (engine.worker.start_tool): merge LoRA
adapters, export, train the tokenizer, preview a stage's dataset, inspect a model, evaluate it
with lm-eval.

Torch-free at import, like engine.worker, which hands `tool` to a spawned child. A tool reports
one `finished` event whose report is its plain result, or an `error` event with the traceback;
a tool of PROGRESS_TOOLS also gets `emit`, for its `phase` events on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from engine import events as ev
from engine.evaluation import evaluate  # torch-free at import, like this module
from engine.project.layout import project_tokenizer_file
from engine.project.problems import LLMLabError


def merge_adapters(adapter_dir: str, out_dir: str = "", overwrite: bool = False) -> dict:
    from engine.lora import merge

    report = merge(adapter_dir, out_dir or None, overwrite=overwrite)
    return {"out_dir": str(report.out_dir), "max_logit_diff": report.max_logit_diff}


def export_model(model_dir: str, out_dir: str, format: str = "llama", overwrite: bool = False) -> dict:
    from engine.export import export

    return {"out_dir": str(export(model_dir, out_dir, format, overwrite))}


def train_tokenizer(project_path: str) -> dict:
    from engine.project import load_project
    from engine.project_tokenizer import train_project_bpe

    project = load_project(project_path)
    if project.tokenizer.source != "bpe":
        raise LLMLabError(f'tokenizer.source: is {project.tokenizer.source!r}; set it to "bpe" to train one')
    tokenizer = train_project_bpe(project)
    return {"out_dir": str(project_tokenizer_file(project.root).parent), "vocab_size": len(tokenizer)}


def preview(project_path: str, stage: str, table: dict | None = None, n: int = 3) -> dict:
    """The stage's first examples (engine.commands.preview), with `table` as the stage's settings."""
    from engine.commands.preview import EXAMPLES, preview_examples
    from engine.project import project_file, project_from_dict, read_toml

    if stage not in EXAMPLES:
        raise LLMLabError(f"preview: the {stage} stage has no examples to show (stages: {', '.join(EXAMPLES)})")
    file = project_file(project_path)
    data = read_toml(file)
    if table is not None:
        data[stage] = table
    project = project_from_dict(data, file.parent)
    return {"examples": [asdict(example) for example in preview_examples(project, stage, n)]}


def inspect(model_dir: str, view: str, **options) -> dict:
    """One view of `llmlab inspect` (engine.inspection.views), its plain-data report."""
    from engine.inspection.views import inspect_model

    return inspect_model(model_dir, view, **options)


TOOLS: dict[str, Callable[..., dict]] = {
    "merge": merge_adapters,
    "export": export_model,
    "tokenizer": train_tokenizer,
    "preview": preview,
    "inspect": inspect,
    "eval": evaluate,  # `llmlab eval`: the scores, stored beside the model
}
PROGRESS_TOOLS = {"eval"}


def tool(name: str, events: Any, control: Any, **kwargs) -> dict:
    """Run `TOOLS[name](**kwargs)`: one `finished` event with its report, or an `error` event."""
    try:
        progress = {"emit": events.put} if name in PROGRESS_TOOLS else {}
        report = TOOLS[name](**kwargs, **progress)
    except BaseException as error:
        events.put(ev.error_event(error))
        raise
    events.put(ev.finished("completed", report, tool=name))
    return report
