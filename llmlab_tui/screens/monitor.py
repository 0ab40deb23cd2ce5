"""The monitor: start a stage of the open project in a worker, stop it (with a checkpoint) or save
now, and watch it: charts, progress, samples, the log, dataset shares, the report or the error.

Events arrive batched (llmlab_tui/runner.py) and are folded into a RunView at once; the widgets
are redrawn from it on a timer, only when it changed, and only what is shown: the status line a
few times a second, the charts at most once a second (a chart costs tens of milliseconds of CPU,
taken from the run it watches), nothing while another screen is shown. With no run going, the
project's newest run is read back from its metrics.jsonl (followed live when another process
still writes it). The charts fill the space they get (widgets/charts.py); `f` or Enter opens the
focused one full-screen. A run whose stage sets layer_stats adds one chart per per-layer measure
(gradient norm, update/weight ratio, activation RMS, attention entropy), a line per block.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Label, ProgressBar, Select, Static, TabbedContent, TabPane

from engine.project import STAGES
from engine.project.layout import METRICS_FILE
from engine.project.runs import list_runs, run_stage, run_state
from engine.worker import start_worker
from llmlab_tui.messages import WorkerEvents, WorkerExited
from llmlab_tui.redraw_clock import RedrawClock
from llmlab_tui.run_view import CHARTS, RunView, report_lines
from llmlab_tui.runner import TRAIN_JOB as JOB
from llmlab_tui.runner import FileSource
from llmlab_tui.screens.base import ProjectScreen
from llmlab_tui.unsaved import saved_first
from llmlab_tui.widgets.charts import ChartPanel, chart_grid
from llmlab_tui.widgets.nav import NavBar
from llmlab_tui.widgets.stage_select import StageSelect

REDRAW_SECONDS = 0.5
RESUMABLE = ("stopped", "died", "diverged", "completed")  # completed: when its steps were raised
EXIT_WAIT_S, EXIT_WAIT_TRIES = 0.2, 150  # how long `r` waits for a finished run's process to let go of it
LOG_STYLES = {"warning": "$text-warning", "error": "$text-error bold"}
TABS = ("charts", "samples", "log", "summary")


class MonitorScreen(ProjectScreen):
    BINDINGS = [
        Binding("s", "start", "Start", id="monitor.start"),
        Binding("x", "stop", "Stop", id="monitor.stop"),
        Binding("ctrl+s", "save_now", "Save ckpt", id="monitor.save_now"),
        Binding("r", "resume", "Resume", id="monitor.resume"),
        Binding("f,enter", "full_screen", "Full screen", id="monitor.full_screen"),
        *(
            Binding(str(i), f"tab('{tab}')", tab.title(), show=False, id=f"monitor.tab_{tab}")
            for i, tab in enumerate(TABS, 1)
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.view = RunView()
        self._resume_waiting = None  # the timer of a resume waiting for a finished run's process to exit
        self.stage = STAGES[0]
        self.drawn = -1  # the view version on screen
        self.redraws = 0
        self.drawable = False  # the widgets are there (not while the screen is being rebuilt)
        self.chart_clock = RedrawClock()  # when the charts are redrawn: at most once a second
        self.grid = (0, 0)  # the chart grid's (columns, rows per chart)
        self.status: tuple = ()  # what the status line shows

    def compose(self) -> ComposeResult:
        yield NavBar("monitor", self.project.name if self.project else "no project")
        with Horizontal(id="monitor-bar"):
            yield Label("stage", classes="field-label")
            yield StageSelect(self.stage, id="monitor-stage")
            yield Label("", id="monitor-state")
        with Horizontal(id="monitor-progress"):
            yield ProgressBar(show_eta=False, show_percentage=True, id="progress")
            yield Label("", id="progress-text")
        with TabbedContent(id="monitor-tabs"):
            with TabPane("1 Charts", id="charts"), VerticalScroll(id="chart-scroll"), Grid(id="chart-grid"):
                for i in range(len(CHARTS)):
                    yield ChartPanel(id=f"chart-{i}", classes="chart")
            with TabPane("2 Samples", id="samples"):
                yield VerticalScroll(Static(id="samples-text"))
            with TabPane("3 Log", id="log"):
                yield VerticalScroll(Static(id="log-text"), id="log-scroll")
            with TabPane("4 Summary", id="summary"):
                yield VerticalScroll(Static(id="summary-text"))
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REDRAW_SECONDS, self.redraw)

    async def reload(self) -> None:
        self.drawable = False
        await super().reload()

    def loaded(self) -> None:
        self.drawn, self.drawable, self.grid, self.status = -1, True, (0, 0), ()
        if self.app.runner.running(JOB) is None and self.project is not None:
            self.show_last_run()
        self.query_one("#log-scroll", VerticalScroll).anchor()
        self.redraw()

    def show_last_run(self) -> None:
        """The project's newest run from its metrics.jsonl; followed if another process trains it."""
        self.view = RunView()
        runs = [run for run in list_runs(self.project) if (run / METRICS_FILE).is_file()]
        if not runs:
            return
        state = run_state(runs[-1])
        if state["state"] == "running":
            self.view = RunView(run_dir=str(runs[-1]))
            self.app.runner.start(JOB, FileSource(runs[-1]), self)
        else:
            self.view = RunView.from_file(runs[-1] / METRICS_FILE)
            self.view.settle(state)

    # -- actions -------------------------------------------------------------------------------------

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "monitor-stage":
            self.stage = str(event.value)

    def action_start(self) -> None:
        if self.project is None:
            self.notify("Open a project first (F1: projects).", severity="warning")
            return
        if self.app.runner.running(JOB) and self.view.state == "running":  # a finished one may still be exiting
            self.notify("A run is going already: stop it first (x).", severity="warning")
            return
        if not saved_first(self.app, self.action_start):  # the run trains what the forms show
            return
        handle = start_worker(self.project.root, self.stage)
        self.view = RunView(stage=self.stage, state="running")
        self.view.log.append(("info", f"starting {self.stage} (worker pid {handle.pid})"))
        self._follow(handle)

    def action_resume(self) -> None:
        """Continue the shown run (stopped, died, diverged, or completed with more steps) in its folder."""
        if self.app.runner.running(JOB) and self.view.state == "running":
            self.notify("A run is going already: stop it first (x).", severity="warning")
            return
        if self._resume_waiting is None:
            self._resume(Path(self.view.run_dir) if self.view.run_dir else None, EXIT_WAIT_TRIES)

    def _resume(self, run: Path | None, tries: int) -> None:
        self._resume_waiting = None
        state = run_state(run)["state"] if run is not None else None
        if state == "running" and self.view.state in RESUMABLE and tries > 0:
            # its end is written, but its process still holds the lock while it closes: wait for it
            self._resume_waiting = self.set_timer(EXIT_WAIT_S, lambda: self._resume(run, tries - 1))
            return
        if state not in RESUMABLE:
            self.notify(
                "Nothing to resume: pick a stopped, died or diverged run (or start one with s).", severity="warning"
            )
            return
        handle = start_worker(self.project.root, run_stage(run), resume=str(run))
        self.view = RunView.from_file(run / METRICS_FILE)
        self.view.state = "running"
        self.view.log.append(("info", f"resuming {run.name} (worker pid {handle.pid})"))
        self._follow(handle)

    def _follow(self, handle) -> None:
        self.app.runner.start(JOB, handle, self)
        self.query_one(TabbedContent).active = "charts"
        self.redraw()

    def _controllable(self):
        """The live run's job (this app's worker, or a run another process trains), if any."""
        job = self.app.runner.running(JOB)
        if job is None:
            self.notify("No run is going.", severity="warning")
        return job

    def action_stop(self) -> None:
        job = self._controllable()
        if job is not None:
            job.stop()
            self.notify("Stopping: the worker saves a checkpoint, then finishes.")

    def action_save_now(self) -> None:
        job = self._controllable()
        if job is not None:
            job.save()
            self.notify("Saving a checkpoint now.")

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # -- events ----------------------------------------------------------------------------------------

    def on_worker_events(self, message: WorkerEvents) -> None:
        if message.job != JOB:
            return
        self.view.apply(message.events)
        for error in message.of("error"):
            title = "Run died" if error.get("died") else "Run failed"
            self.notify(error.get("message", "the run failed"), title=title, severity="error")
            self.query_one(TabbedContent).active = "summary"

    def on_worker_exited(self, message: WorkerExited) -> None:
        if message.job != JOB:
            return
        if self.view.run_dir and self.view.state in ("running", "died"):  # no word of an end: ask the run
            self.view.settle(run_state(Path(self.view.run_dir)))
        elif message.exitcode not in (0, None) and self.view.error is None:
            self.view.apply([{"type": "error", "message": f"the worker exited with code {message.exitcode}"}])

    # -- drawing -------------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw what is shown of the view if it changed (the timer calls this a few times a second)."""
        if self.view.version == self.drawn or not self.drawable or self.app.screen is not self:
            return
        view, tab = self.view, self.query_one(TabbedContent).active
        state = f"{view.state} {view.stage}  {view.detail}".rstrip()
        status = (state, view.total_steps, view.step, view.progress_text())
        if status != self.status:  # fixed-size labels: no layout pass (it would repaint every chart)
            self.status = status
            self.query_one("#monitor-state", Label).update(status[0], layout=False)
            bar = self.query_one("#progress", ProgressBar)  # never without a total: that one animates all the time
            bar.update(total=view.total_steps or 1, progress=view.step)
            self.query_one("#progress-text", Label).update(status[3], layout=False)
        if tab == "charts" and not self.chart_clock.due():
            return  # drawn at a later tick
        self.drawn = view.version
        self.redraws += 1
        if tab == "charts":
            self._draw_charts()
            self.chart_clock.drawn()
        else:
            pane = {"samples": samples_content, "log": log_content, "summary": summary_content}[tab]
            self.query_one(f"#{tab}-text", Static).update(pane(view))

    def on_tabbed_content_tab_activated(self) -> None:
        self.drawn = -1  # the pane just shown is drawn at the next tick
        self.chart_clock.now()

    async def on_screen_resume(self) -> None:
        self.drawn = -1
        self.chart_clock.now()
        await super().on_screen_resume()

    def on_resize(self) -> None:
        self.drawn = -1
        self.chart_clock.now()

    def _draw_charts(self) -> None:
        shown = [(i, chart, lines) for i, chart in enumerate(CHARTS) if (lines := self.view.chart_lines(chart))]
        scroll = self.query_one("#chart-scroll", VerticalScroll)
        columns, rows = chart_grid(len(shown), scroll.size.width, scroll.size.height)
        if self.grid != (columns, rows):  # styles set only on a change: each set lays the grid out again
            self.grid = (columns, rows)
            grid = self.query_one("#chart-grid", Grid)
            grid.styles.grid_size_columns, grid.styles.grid_rows = columns, str(rows)
        visible = {i for i, _, _ in shown}
        for i in range(len(CHARTS)):
            self.query_one(f"#chart-{i}", ChartPanel).display = i in visible
        for i, chart, lines in shown:
            self.query_one(f"#chart-{i}", ChartPanel).draw(chart.title, lines, chart.per_layer)

    def action_full_screen(self) -> None:
        """Open the focused chart (else the first one shown) on a screen of its own."""
        from llmlab_tui.screens.chart import ChartScreen

        panels = [panel for panel in self.query(ChartPanel) if panel.display]
        if self.query_one(TabbedContent).active != "charts" or not panels:
            self.notify("No chart to show yet.", severity="warning")
            return
        focused = next((panel for panel in panels if panel.has_focus_within or panel.has_focus), panels[0])
        chart = CHARTS[int(focused.id.removeprefix("chart-"))]
        self.app.push_screen(ChartScreen(chart, lambda: self.view))


def samples_content(view: RunView) -> Content:
    if not view.samples:
        return Content("No samples yet (the stage's sample_every sets how often).")
    parts: list = [(f"step {view.sample_step}\n", "$text-accent bold")]
    for sample in view.samples:
        parts += [(sample.get("prompt", ""), "$text-muted"), sample.get("text", ""), "\n\n"]
    return Content.assemble(*parts)


def log_content(view: RunView) -> Content:
    parts = [(f"{message}\n", LOG_STYLES.get(level, "")) for level, message in view.log]
    return Content.assemble(*parts) if parts else Content("No run yet: pick a stage and press s.")


def summary_content(view: RunView) -> Content:
    parts: list = [f"run     {view.run_dir or '-'}\nstate   {view.state}\n"]
    if view.shares:
        parts.append(("\ndataset shares (realized / configured weight)\n", "$text-accent bold"))
        parts += [f"  {name}: {s.get('share', 0):.1%} / {s.get('weight', 0):g}\n" for name, s in view.shares.items()]
    if view.report is not None:
        parts.append(("\nreport\n", "$text-accent bold"))
        parts += [f"  {label:<16} {value}\n" for label, value in report_lines(view.report)]
    if view.error is not None:
        message, trace = view.error
        parts += [("\nerror\n", "$text-error bold"), (f"{message}\n\n", "$text-error"), trace]
    return Content.assemble(*parts)
