"""The dataset preview of a stage: its first examples as the model will see them, trained text
marked, with the detected format. A worker builds them (the tokenizer and datasets need the
engine: engine/task_worker.py `preview`); the stages screen opens this dialog with Ctrl+O.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from engine.worker import start_tool
from llmlab_tui.messages import WorkerEvents, error_content

JOB = "preview"
TRAINED_STYLE = "bold underline $text-success"


class PreviewScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close", id="preview.close")]

    def __init__(self, project_root: Path, stage: str, table: dict) -> None:
        super().__init__(classes="dialog-screen")
        self.project_root, self.stage, self.table = project_root, stage, table

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="preview-dialog"):
            yield Label(f"{self.stage}: the first examples (trained text underlined)", classes="dialog-question")
            with VerticalScroll(id="preview-body"):
                yield Static("building the preview in a worker …", id="preview-text")
        yield Footer()

    def on_mount(self) -> None:
        handle = start_tool("preview", project_path=str(self.project_root), stage=self.stage, table=self.table)
        self.app.runner.start(JOB, handle, self)

    def on_worker_events(self, message: WorkerEvents) -> None:
        text = self.query_one("#preview-text", Static)
        for event in message.of("finished"):
            text.update(examples_content(event["report"]["examples"]))
        for event in message.of("error"):
            text.update(error_content(event))

    def action_close(self) -> None:
        self.app.runner.end(JOB)
        self.dismiss(None)


def examples_content(examples: list[dict]) -> Content:
    """Each example: a header (source, format, label, truncation), its text with trained spans marked."""
    if not examples:
        return Content("The stage's datasets gave no examples.")
    parts: list = []
    for example in examples:
        label = f", {example['label']}" if example.get("label") else ""
        cut = ", truncated at seq_len" if example.get("truncated") else ""
        parts.append((f"── {example['source']} (format: {example['format']}{label}{cut})\n", "$text-accent bold"))
        parts += [(text, TRAINED_STYLE if trained else "") for text, trained in example["spans"]]
        parts.append("\n")
        if example.get("note"):
            parts.append((f"reference: {example['note']}\n", "$text-muted"))
        parts.append("\n")
    return Content.assemble(*parts)
