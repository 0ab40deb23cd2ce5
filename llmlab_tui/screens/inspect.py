"""The inspect screen (F8, "inside the model"): a model folder of the project and a text, read four
ways by the worker tool `inspect` (engine/task_worker.py, the views of `llmlab inspect`):
attention (1), logit lens (2), per-token surprise (3), ablation (4).

Enter in the text (or Ctrl+R) runs the shown view; showing a view that has no report for the
picked model and text runs it too, except ablation (every head, MLP and block on the run's
held-out batches: Ctrl+R, `m` switches zero / mean). The attention report holds every head, so
←/→ (head) and [ / ] (layer) redraw without the worker. One worker at a time; its error shows in
the view, the screen goes on.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer
from textual.content import Content
from textual.widgets import Footer, Input, Label, Select, Static

from engine.inspection.render import ABLATION_MODES
from engine.worker import start_tool
from llmlab_tui import inspection
from llmlab_tui.messages import WorkerEvents, WorkerExited, error_content
from llmlab_tui.model_dirs import model_dirs
from llmlab_tui.screens.base import ProjectScreen
from llmlab_tui.widgets.nav import NavBar
from llmlab_tui.widgets.ordered_input import OrderedInput
from llmlab_tui.widgets.pickers import ModelPicker

JOB = "inspect"
VIEWS = {"attention": "Attention", "lens": "Lens", "tokens": "Tokens", "ablate": "Ablation"}  # engine view: title
PROMPT_VIEWS = ("attention", "lens", "tokens")  # read the text; ablation reads the run's held-out data
DEFAULT_PROMPT = "The cat sat on the mat."
TOP_K = 3  # alternatives per token in the surprise table: 80 columns hold three


class ReportView(ScrollableContainer, inherit_bindings=False):
    """The shown view, scrolled by keys (←/→ are the screen's: heads); Ctrl+PgUp / Ctrl+PgDn scroll sideways."""

    BINDINGS = [
        Binding("up", "scroll_up", "Scroll up", show=False),
        Binding("down", "scroll_down", "Scroll down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
        Binding("ctrl+pageup", "page_left", "Page left", show=False),
        Binding("ctrl+pagedown", "page_right", "Page right", show=False),
    ]


class InspectScreen(ProjectScreen):
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="inspect.run"),
        *(
            Binding(str(n), f"view('{view}')", title, show=False, id=f"inspect.{view}")
            for n, (view, title) in enumerate(VIEWS.items(), 1)
        ),
        Binding("left", "head(-1)", "Previous head", show=False, id="inspect.previous_head"),
        Binding("right", "head(1)", "Next head", key_display="←→", id="inspect.next_head"),
        Binding("left_square_bracket", "layer(-1)", "Previous layer", show=False, id="inspect.previous_layer"),
        Binding("right_square_bracket", "layer(1)", "Next layer", key_display="[]", id="inspect.next_layer"),
        Binding("m", "mode", "Zero / mean", id="inspect.mode"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models = []
        self.view = "attention"
        self.at_layer = self.at_head = 0  # the heatmap shown (Screen.layer is Textual's)
        self.mode = ABLATION_MODES[0]
        self.reports: dict[str, tuple[tuple, dict]] = {}  # view: (the request it answers, report or error event)
        self.running: tuple | None = None  # the request the worker computes

    def compose(self) -> ComposeResult:
        self.models = model_dirs(self.project) if self.project else []
        yield NavBar("inspect", self.project.name if self.project else "no project")
        with Horizontal(id="inspect-bar"):
            yield ModelPicker(self._options(), "no model yet: run a stage first", "inspect-model")
            yield Label("", id="inspect-views")
        yield OrderedInput(DEFAULT_PROMPT, placeholder="text to read, then Enter", compact=True, id="inspect-prompt")
        yield Label("", id="inspect-title")
        with ReportView(id="inspect-scroll"):
            yield Static("", id="inspect-body")
        yield Label("", id="inspect-status")
        yield Footer()

    def _options(self) -> list[tuple[str, str]]:
        return [(m.title, str(m.path)) for m in self.models]

    def on_screen_resume(self) -> None:
        """Checkpoints written since the last visit join the picker."""
        models = model_dirs(self.project) if self.project else []
        if self.project is not None and models != self.models:
            self.models = models
            self.query_one("#inspect-model", ModelPicker).set_models(self._options())

    def loaded(self) -> None:
        self.reports, self.running = {}, None
        self.draw()
        self.set_status("Enter reads the text; 1-4 switch views" if self.models else "no model yet: run a stage (F4)")

    def focus_first_field(self) -> None:
        self.query_one("#inspect-prompt", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Head and layer keys only on the attention view, zero / mean only on ablation."""
        if action in ("head", "layer"):
            return self.view == "attention"
        if action == "mode":
            return self.view == "ablate"
        return super().check_action(action, parameters)

    # -- requests ------------------------------------------------------------------------------------

    def request(self) -> tuple | None:
        """(model, view, text or mode) for the shown view as the fields read now; None without a model."""
        model = self.query_one("#inspect-model", Select).value
        if model == Select.NULL:
            return None
        if self.view == "ablate":
            return (str(model), self.view, self.mode)
        return (str(model), self.view, self.query_one("#inspect-prompt", Input).value)

    def action_run(self) -> None:
        request = self.request()
        if request is None:
            self.set_status("No model to inspect: run a stage first (F4).", "warning")
        elif self.view in PROMPT_VIEWS and not request[2].strip():
            self.set_status("text: type some text to read (the prompt field).", "warning")
        elif self.running is not None:
            self.set_status(f"{VIEWS[self.running[1]]} is still running; wait for it.", "warning")
        else:
            self.start(request)

    def start(self, request: tuple) -> None:
        model, view, option = request
        options = {"mode": option} if view == "ablate" else {"prompt": option}
        if view == "attention":
            options["every_head"] = True
        if view == "tokens":
            options["top_k"] = TOP_K
        self.running = request
        self.app.runner.start(JOB, start_tool("inspect", model_dir=model, view=view, **options), self)
        what = f"{option} ablation of every head, MLP and block" if view == "ablate" else VIEWS[view]
        self.set_status(f"{what}: running in a worker …")
        self.draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "inspect-prompt":
            if self.view == "ablate":  # the text is read by the other views
                self.view = "attention"
                self.refresh_bindings()
            self.action_run()
            self.query_one("#inspect-scroll").focus()  # the view's keys work at once

    def run_if_stale(self) -> None:
        """Run the shown view when its report answers another model or text (never ablation by itself)."""
        request = self.request()
        shown = self.reports.get(self.view)
        if self.view in PROMPT_VIEWS and request and request[2].strip() and self.running is None:
            if shown is None or shown[0] != request:
                self.start(request)

    # -- keys ----------------------------------------------------------------------------------------

    def action_view(self, view: str) -> None:
        self.view = view
        if not self.is_mounted:  # from the palette, before the first frame: on_mount draws it
            return
        self.refresh_bindings()
        self.draw()
        self.run_if_stale()

    def action_head(self, step: int) -> None:
        report = self.shown_report()
        if report is not None:
            self.at_head = (self.at_head + step) % inspection.head_count(report)[1]
            self.draw()

    def action_layer(self, step: int) -> None:
        report = self.shown_report()
        if report is not None:
            self.at_layer = (self.at_layer + step) % inspection.head_count(report)[0]
            self.draw()

    def action_mode(self) -> None:
        self.mode = ABLATION_MODES[(ABLATION_MODES.index(self.mode) + 1) % len(ABLATION_MODES)]
        self.draw()

    # -- the worker's events -------------------------------------------------------------------------

    def on_worker_events(self, message: WorkerEvents) -> None:
        if message.job != JOB or self.running is None:
            return
        for event in message.of("finished") + message.of("error"):
            request, self.running = self.running, None
            self.reports[request[1]] = (request, event)
            if event["type"] == "finished":
                label = next((m.title for m in self.models if str(m.path) == request[0]), request[0])
                self.set_status(f"{VIEWS[request[1]]} of {label}")
            else:
                self.set_status(f"{VIEWS[request[1]]}: the worker refused or failed; see above", "error")
            self.draw()
            self.run_if_stale()

    def on_worker_exited(self, message: WorkerExited) -> None:
        """A worker that ended without a word (killed, out of memory); not an earlier one's news
        arriving after the next worker started."""
        if message.job == JOB and self.running is not None and self.app.runner.running(JOB) is None:
            request, self.running = self.running, None
            error = {"type": "error", "message": f"the worker ended with exit code {message.exitcode}, no report"}
            self.reports[request[1]] = (request, error)
            self.set_status(error["message"], "error")
            self.draw()

    # -- drawing -------------------------------------------------------------------------------------

    def on_resize(self) -> None:
        self.draw()  # the heatmap and its head table sit side by side only where they fit

    def shown_report(self) -> dict | None:
        """The shown view's report (None: none yet, or an error)."""
        entry = self.reports.get(self.view)
        return entry[1]["report"] if entry and entry[1]["type"] == "finished" else None

    def draw(self) -> None:
        self.query_one("#inspect-views", Label).update(
            Content.assemble(
                *(
                    (f" {n} {title} ", "reverse bold" if view == self.view else "$text-muted")
                    for n, (view, title) in enumerate(VIEWS.items(), 1)
                )
            )
        )
        entry = self.reports.get(self.view)
        title, body = self._title(), Content("")
        if entry is not None and entry[1]["type"] == "error":
            body = error_content(entry[1])
        elif entry is not None:
            body = self._body(entry[1]["report"])
        elif self.view == "ablate":
            body = Content("Ctrl+R removes each head, MLP and block in turn and measures the held-out loss.")
        self.query_one("#inspect-title", Label).update(title)
        self.query_one("#inspect-body", Static).update(body)

    def _title(self) -> str:
        report = self.shown_report()
        if self.view == "attention" and report is not None:
            layers, heads = inspection.head_count(report)  # a new report may have fewer
            self.at_layer, self.at_head = min(self.at_layer, layers - 1), min(self.at_head, heads - 1)
            return f"{inspection.head_title(report, self.at_layer, self.at_head)} · ←/→ head · [ ] layer"
        if self.view == "ablate":
            return f"ablation: {self.mode} (m switches) on the run's held-out batches; Ctrl+R runs it"
        if self.view == "lens":
            return "logit lens: final norm + lm_head on the residual stream after each block"
        if self.view == "tokens":
            return "surprise: each token's loss in bits, the worst, bits per byte"
        return "attention: Enter reads the text"

    def _body(self, report: dict) -> Content:
        heat = inspection.Heat.from_theme(self.app.get_css_variables())
        if self.view == "attention":
            width = self.query_one("#inspect-scroll").size.width - 2  # the vertical scrollbar's room
            return inspection.attention_content(report, self.at_layer, self.at_head, heat, width)
        if self.view == "lens":
            return inspection.lens_content(report, heat)
        if self.view == "tokens":
            return inspection.tokens_content(report, heat)
        return inspection.ablation_content(report)

    def set_status(self, text: str, severity: str = "") -> None:
        style = f"$text-{severity}" if severity else ""
        self.query_one("#inspect-status", Label).update(Content.assemble((text, style)))
