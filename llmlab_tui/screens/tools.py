"""The tools screen: merge LoRA adapters into a full model, export a model to Llama format, train
the project's BPE tokenizer, evaluate a model with lm-eval. Each runs in a worker process
(engine/task_worker.py: `tool`); its progress (an evaluation's phases), then its report or its
error, with the traceback, shows below the forms. Each button runs the action of its key binding
(Textual's `Button(action=...)`).

An evaluation is `llmlab eval` (engine.evaluation): the tasks by lm-eval name (LLM-Lab's own
`demo_facts` by default), an optional limit of documents per task and a folder of task files; its
result table shows below, and the scores are stored beside the model, where Compare (F7) reads them.

Merge and export write only new or empty folders, like `llmlab merge` / `llmlab export`
(engine.project.outputs); running one again onto its earlier output is refused unless its
"--overwrite" box is ticked, and a folder they did not write is never replaced.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from engine.events import phase_text
from engine.project.eval_results import results_table
from engine.project.layout import project_tokenizer_file
from engine.worker import start_tool
from llmlab_tui.messages import WorkerEvents, error_content
from llmlab_tui.model_dirs import ModelDir, model_dirs
from llmlab_tui.screens.base import ProjectScreen
from llmlab_tui.widgets.nav import NavBar
from llmlab_tui.widgets.ordered_input import OrderedInput
from llmlab_tui.widgets.pickers import ModelPicker

JOB = "tool"
EXPORT_DIR = "export"  # default exports go to <project>/export/<run>-<checkpoint>-llama
DEFAULT_TASKS = "demo_facts"  # LLM-Lab's own task (engine/eval_tasks/): the demo world's facts


class ToolsScreen(ProjectScreen):
    BINDINGS = [
        Binding("ctrl+g", "merge", "Merge", id="tools.merge"),
        Binding("ctrl+o", "export", "Export", id="tools.export"),
        Binding("ctrl+t", "tokenizer", "Tokenizer", id="tools.tokenizer"),
        Binding("ctrl+l", "evaluate", "Evaluate", id="tools.evaluate"),  # ctrl+e: end of line in a field
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models = []
        self.running = ""  # the tool last started, named in its progress lines

    def compose(self) -> ComposeResult:
        self.models = models = model_dirs(self.project) if self.project else []
        adapters, full = _options(models, adapter=True), _options(models, adapter=False)
        yield NavBar("tools", self.project.name if self.project else "no project")
        with VerticalScroll(id="tools-body", can_focus=False):
            yield Label("Merge LoRA adapters into a full model", classes="field-set-title")
            yield from _row("adapter", ModelPicker(adapters, "no adapter run yet", "merge-adapter"))
            yield from _row(
                "out dir", OrderedInput(placeholder="blank: beside it, <name>-merged", compact=True, id="merge-out")
            )
            yield from _row(
                "--overwrite", Checkbox("replace an earlier merge there", compact=True, id="merge-overwrite")
            )
            yield Button("Merge (^g)", id="merge", action="screen.merge", compact=True)
            yield Label("Export to Llama format", classes="field-set-title")
            yield from _row("model", ModelPicker(full, "no model yet", "export-model"))
            yield from _row(
                "out dir",
                OrderedInput(
                    placeholder=f"blank: {EXPORT_DIR}/<run>-<checkpoint>-llama", compact=True, id="export-out"
                ),
            )
            yield from _row(
                "--overwrite", Checkbox("replace an earlier export there", compact=True, id="export-overwrite")
            )
            yield Button("Export (^o)", id="export", action="screen.export", compact=True)
            yield Label("Tokenizer", classes="field-set-title")
            yield Label(self._tokenizer_line(), id="tokenizer-line")
            yield Button("Train BPE (^t)", id="tokenizer", action="screen.tokenizer", compact=True)
            yield Label("Evaluate with lm-eval", classes="field-set-title")
            yield from _row("model", ModelPicker(_options(models), "no model yet", "eval-model"))
            yield from _row("--tasks", OrderedInput(DEFAULT_TASKS, compact=True, id="eval-tasks"))
            yield from _row("--limit", OrderedInput(placeholder="blank: every document", compact=True, id="eval-limit"))
            yield from _row(
                "--include-path",
                OrderedInput(placeholder="blank: LLM-Lab's own tasks", compact=True, id="eval-include"),
            )
            yield Button("Evaluate (^l)", id="evaluate", action="screen.evaluate", compact=True)
        yield Static("", id="tool-output")
        yield Footer()

    def on_screen_resume(self) -> None:
        """Checkpoints written since the last visit join the pickers."""
        self.refresh_models()

    def refresh_models(self) -> None:
        """Update the pickers and the tokenizer line in place (the inputs keep what was typed)."""
        if self.project is None:
            return
        self.query_one("#tokenizer-line", Label).update(self._tokenizer_line())
        models = model_dirs(self.project)
        if models == self.models:
            return
        self.models = models
        self.query_one("#merge-adapter", ModelPicker).set_models(_options(models, adapter=True))
        self.query_one("#export-model", ModelPicker).set_models(_options(models, adapter=False))
        self.query_one("#eval-model", ModelPicker).set_models(_options(models))

    def _tokenizer_line(self) -> str:
        if self.project is None:
            return ""
        config = self.project.tokenizer
        if config.source != "bpe":
            return f'source {config.source!r}: set tokenizer.source = "bpe" (F2) to train one'
        trained = project_tokenizer_file(self.project.root).is_file()
        state = "trained (train again to replace)" if trained else "not trained yet"
        return f"BPE, vocab {config.vocab_size:,}: {state}"

    def action_merge(self) -> None:
        adapter = self.query_one("#merge-adapter", Select).value
        if adapter == Select.NULL:
            self.tell("No adapter directory to merge (train a stage with LoRA first).", "warning")
            return
        self.start(
            "merge",
            adapter_dir=str(adapter),
            out_dir=self._out("#merge-out"),
            overwrite=self.query_one("#merge-overwrite", Checkbox).value,
        )

    def action_export(self) -> None:
        model = self.query_one("#export-model", Select).value
        if model == Select.NULL:
            self.tell("No model directory to export (run a stage first).", "warning")
            return
        path = Path(str(model))
        out = self._out("#export-out") or str(self.project.root / EXPORT_DIR / f"{path.parent.name}-{path.name}-llama")
        self.start(
            "export", model_dir=str(path), out_dir=out, overwrite=self.query_one("#export-overwrite", Checkbox).value
        )

    def action_tokenizer(self) -> None:
        self.start("tokenizer", project_path=str(self.project.root))

    def action_evaluate(self) -> None:
        model = self.query_one("#eval-model", Select).value
        if model == Select.NULL:
            self.tell("No model directory to evaluate (run a stage first).", "warning")
            return
        limit = self.query_one("#eval-limit", Input).value.strip()
        if limit and not limit.isdigit():
            self.tell(f"--limit: a whole number of documents per task, or blank; got {limit!r}", "warning")
            return
        include = self.query_one("#eval-include", Input).value.strip()
        self.start(
            "eval",
            model_dir=str(model),
            tasks=self.query_one("#eval-tasks", Input).value,
            limit=int(limit) if limit else None,
            include_path=str(self.project.resolve(include)) if include else None,
        )

    def _out(self, selector: str) -> str:
        text = self.query_one(selector, Input).value.strip()
        return str(self.project.resolve(text)) if text else ""

    def start(self, name: str, **kwargs) -> None:
        if self.app.runner.running(JOB):
            self.tell("A tool is running already; wait for it.", "warning")
            return
        self.running = name
        self.show(f"{name}: running in a worker …")
        self.app.runner.start(JOB, start_tool(name, **kwargs), self)

    def on_worker_events(self, message: WorkerEvents) -> None:
        if message.job != JOB:
            return
        for event in message.of("phase")[-1:]:
            self.show(f"{self.running}: {phase_text(event)}")
        for event in message.of("finished"):
            self.refresh_models()  # a merged model or a tokenizer appears in the lines above
            lines = REPORTS.get(event.get("tool"), _report_lines)(event["report"])
            self.show(Content.assemble((f"{event.get('tool')}: done\n", "$text-success bold"), lines))
            self.notify_elsewhere(f"{event.get('tool')}: done (F6)")
        for event in message.of("error"):
            self.show(error_content(event))
            self.notify_elsewhere(f"{event['message']} (F6)", title="Tool failed", severity="error")

    def show(self, content: Content | str) -> None:
        self.query_one("#tool-output", Static).update(content)

    def tell(self, text: str, severity: str) -> None:
        """A note in the output area (a toast there would cover the result text)."""
        self.show(Content.assemble((text, f"$text-{severity}")))

    def notify_elsewhere(self, text: str, **kwargs) -> None:
        """A toast for a tool that ended while another screen is shown; here the output says it."""
        if not self.is_current:
            self.notify(text, **kwargs)


def _row(label: str, editor) -> ComposeResult:
    with Horizontal(classes="field-line"):
        yield Label(label, classes="field-label")
        yield editor


def _options(models: list[ModelDir], adapter: bool | None = None) -> list[tuple[str, str]]:
    """(title, path) of the model directories, only adapters or only full models when `adapter` says."""
    return [(m.title, str(m.path)) for m in models if adapter is None or m.adapter == adapter]


def _report_lines(report: dict) -> str:
    return "\n".join(f"  {key}: {value}" for key, value in report.items())


def _eval_lines(report: dict) -> str:
    """An evaluation's result table, then where its scores are stored."""
    return "\n".join([*results_table(report["tasks"]), f"stored in {report['results']}"])


REPORTS = {"eval": _eval_lines}  # a tool's report as text, where plain "key: value" lines would not do
