"""Worker targets the app spawns (`engine.worker.spawn`): training that may outlive the app, and the
one-shot tools (merge LoRA adapters, export, train the tokenizer, preview a stage's dataset).

Torch-free at import, like engine.worker: the app hands these functions to a spawned child. Every
target first sends the child's stdout and stderr to a log file (progress bars written to the
terminal would draw over the app), then reports through events: training through
`engine.worker.run`; a tool with one `finished` event whose report is its plain result, or an
`error` event with the traceback.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from engine import events as ev
from engine.project.problems import LLMLabError
from engine.project.layout import project_tokenizer_file

OUTPUT_LOG = Path(tempfile.gettempdir()) / "llmlab-worker.log"


def quiet_output(path: Path = OUTPUT_LOG) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the end of `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)


def error_event(error: BaseException) -> dict:
    """The `error` event for an exception being handled: its readable message and traceback."""
    message = str(error) if isinstance(error, LLMLabError) else f"{type(error).__name__}: {error}"
    return ev.error(message, traceback.format_exc())


class ParentQueue:
    """Forwards events to the parent's queue while the parent lives.

    Once the parent has exited (the app quit and left the run going), nobody reads the queue: its
    pipe fills and the child's exit would wait forever to flush it. Events then reach only
    metrics.jsonl, and the queue is told not to hold the exit up.
    """

    def __init__(self, queue: Any):
        self.queue, self.parent = queue, os.getppid()

    def put(self, event: dict) -> None:
        if self.queue is not None and os.getppid() != self.parent:
            self.queue.cancel_join_thread()
            self.queue = None
        if self.queue is not None:
            self.queue.put(event)


def train(project_path: str, stage: str, overrides: list[str], events: Any, control: Any,
          device: str | None = None, resume: bool = False) -> dict:
    """`engine.worker.run` in its own session: closing the terminal or quitting the app leaves it running."""
    from engine.worker import run

    os.setsid()  # no controlling terminal: no SIGHUP when the app's terminal goes away
    quiet_output()
    return run(project_path, stage, overrides, ParentQueue(events), control, device, resume)


# -- one-shot tools: plain keyword arguments in, a plain report out ---------------------------------


def merge_adapters(adapter_dir: str, out_dir: str = "") -> dict:
    from engine.lora import merge

    report = merge(adapter_dir, out_dir or None)
    return {"out_dir": str(report.out_dir), "max_logit_diff": report.max_logit_diff}


def export_model(model_dir: str, out_dir: str, format: str = "llama") -> dict:
    from engine.export import export

    return {"out_dir": str(export(model_dir, out_dir, format))}


def train_tokenizer(project_path: str) -> dict:
    from engine.project import load_project
    from engine.project_tokenizer import train_project_bpe

    project = load_project(project_path)
    if project.tokenizer.source != "bpe":
        raise LLMLabError(f"tokenizer.source: is {project.tokenizer.source!r}; set it to \"bpe\" to train one")
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


TOOLS: dict[str, Callable[..., dict]] = {
    "merge": merge_adapters,
    "export": export_model,
    "tokenizer": train_tokenizer,
    "preview": preview,
}


def tool(name: str, events: Any, control: Any, **kwargs) -> dict:
    """Run `TOOLS[name](**kwargs)`: one `finished` event with its report, or an `error` event."""
    quiet_output()
    try:
        report = TOOLS[name](**kwargs)
    except BaseException as error:
        events.put(error_event(error))
        raise
    events.put(ev.finished("completed", report, tool=name))
    return report
