"""One monitor chart on the whole screen, following the run live; Escape (or f) goes back."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from llmlab_tui.run_view import Chart, RunView
from llmlab_tui.widgets.charts import ChartPanel


class ChartScreen(Screen):
    BINDINGS = [Binding("escape,f", "app.pop_screen", "Back", id="chart.back")]

    def __init__(self, chart: Chart, view: Callable[[], RunView], redraw_seconds: float = 1.0) -> None:
        super().__init__()
        self.chart, self.view, self.redraw_seconds, self.drawn = chart, view, redraw_seconds, -1

    def compose(self) -> ComposeResult:
        yield ChartPanel(id="full-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.redraw_seconds, self.redraw)
        self.call_after_refresh(self.redraw)

    def on_resize(self) -> None:
        self.drawn = -1

    def redraw(self) -> None:
        view = self.view()
        if view.version != self.drawn:
            self.drawn = view.version
            self.query_one(ChartPanel).draw(self.chart.title, view.chart_lines(self.chart), self.chart.per_layer)
