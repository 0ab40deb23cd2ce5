"""The compare screen: the open project's runs overlaid on one chart, a measure against step, tokens
seen or wall time, with a table of their final measures and the settings that differ between them
(engine/project/compare.py reads the run folders; nothing runs here).

The table also lists the lm-eval scores of each run's final model (`llmlab eval`, or Tools), as
rows like `hellaswag acc`. The list numbers the runs (`[n]` in the chart's legend and the table's
columns); space ticks one;
`m` and `x` (or the two selectors) pick the measure and the x axis; `r` reads the run folders
again (a live run's newest points); `o` adds the runs of the other projects beside it (in the
projects folder, listed as `project/run`) or takes them away again, ticks of the open project's
runs kept: runs with other tokenizers compare by bits per byte; `w` ticks the runs of the
project's newest sweep (`llmlab sweep`, F3's Ctrl+B), and of the one before at each press.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Select, SelectionList

from engine.project import PROJECT_FILE, load_project
from engine.project.compare import (
    AXES,
    RunSeries,
    config_diff,
    final_measures,
    format_value,
    order_measures,
    read_run,
    run_config,
)
from engine.project.eval_results import results_file
from engine.project.layout import FINAL, METRICS_FILE
from engine.project.problems import LLMLabError
from engine.project.runs import list_runs, run_state
from engine.project.sweeps import project_sweeps, sweep_runs
from llmlab_tui.screens.base import ProjectScreen
from llmlab_tui.widgets.charts import ChartPanel
from llmlab_tui.widgets.nav import NavBar

DEFAULT_MEASURE = "train_loss"


class CompareScreen(ProjectScreen):
    BINDINGS = [
        Binding("m", "cycle('measure')", "Measure", id="compare.measure"),
        Binding("x", "cycle('axis')", "X axis", id="compare.axis"),
        Binding("r", "reread", "Reread", id="compare.reread"),
        Binding("o", "other_projects", "Other projects", id="compare.other_projects"),
        Binding("w", "sweep", "Sweep", id="compare.sweep"),
    ]
    DEFAULT_CSS = """
    #compare-top { height: 1fr; }
    #compare-side { width: 34; }
    #compare-runs { height: 1fr; border: round $surface-lighten-2; }
    #compare-table { height: 9; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Path] = []  # the open project's runs, then (with `o`) the other projects'
        self.others = False  # the other projects' runs are listed
        self.sweep_shown: str | None = None  # the sweep whose runs `w` ticked last
        self._read: dict[Path, tuple[tuple, RunSeries]] = {}  # run folder → (its files' mtimes, series)
        self.lines: list[tuple[str, list[float], list[float]]] = []  # the chart's series as last drawn
        self.choices = {"measure": [DEFAULT_MEASURE], "axis": list(AXES)}  # what each selector offers

    def compose(self) -> ComposeResult:
        self.runs = self._listed()
        yield NavBar("compare", self.project.name if self.project else "no project")
        with Horizontal(id="compare-top"):
            with Vertical(id="compare-side"):
                yield SelectionList[int](*self._options(), id="compare-runs")
                yield Select([(DEFAULT_MEASURE, DEFAULT_MEASURE)], value=DEFAULT_MEASURE, compact=True, id="measure")
                yield Select([(axis, axis) for axis in AXES], value=AXES[0], compact=True, id="axis")
            yield ChartPanel(id="compare-chart")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def _listed(self) -> list[Path]:
        """The open project's runs, then the other projects' when `o` asked for them."""
        if self.project is None:
            return []
        runs = list_runs(self.project)
        folder, own = self.app.projects_dir, self.project.root.resolve()
        for other in sorted(folder.iterdir()) if self.others and folder.is_dir() else []:
            if (other / PROJECT_FILE).is_file() and other.resolve() != own:
                try:
                    runs += list_runs(load_project(other))
                except LLMLabError:
                    continue  # a project that does not load: the projects screen says why
        return runs

    def _options(self) -> list[tuple[str, int]]:
        """`n run state` a line; another project's run named `project/run`."""
        own = self.project.root.resolve() if self.project else None
        options = []
        for n, run in enumerate(self.runs, 1):
            project = run.parent.parent
            name = _short(run.name) if project.resolve() == own else f"{project.name}/{_short(run.name)}"
            options.append((f"{n} {name} {run_state(run)['state']}", n - 1))
        return options

    def action_other_projects(self) -> None:
        """List the other projects' runs after the open one's, or no longer (ticks of the rest kept)."""
        listing = self.query_one("#compare-runs", SelectionList)
        ticked = {self.runs[i] for i in listing.selected}
        at = self.runs[listing.highlighted] if listing.highlighted is not None else None
        self.others = not self.others
        self.runs = self._listed()
        with self.prevent(SelectionList.SelectedChanged):
            listing.clear_options()
            listing.add_options(self._options())
            for index, run in enumerate(self.runs):
                if run in ticked:
                    listing.select(index)
        listing.highlighted = self.runs.index(at) if at in self.runs else (0 if self.runs else None)
        self._name_list()
        self.notify("Runs of the other projects listed." if self.others else "The open project's runs only.")
        self.show()

    def _name_list(self) -> None:
        self.query_one("#compare-runs").border_title = "runs (space)" if self.runs else "no runs yet"

    def action_sweep(self) -> None:
        """Tick the runs of the newest sweep, or of the one before the sweep ticked last (then round)."""
        sweeps = project_sweeps(self.project) if self.project else []
        if not sweeps:
            self.notify("No sweep in this project yet: start one on F3 (Ctrl+B) or with `llmlab sweep`.")
            return
        names = [f.name for f in sweeps]
        after = names.index(self.sweep_shown) + 1 if self.sweep_shown in names else 0
        for sweep in sweeps[after:] + sweeps[:after]:
            try:
                members = sweep_runs(sweep, self.project)
            except LLMLabError:
                continue  # a sweep whose members have not started yet
            listing = self.query_one("#compare-runs", SelectionList)
            with self.prevent(SelectionList.SelectedChanged):
                listing.deselect_all()
                for run in members:
                    if run in self.runs:
                        listing.select(self.runs.index(run))
            self.sweep_shown = sweep.name
            self.notify(f"sweep {sweep.name}: its {len(members)} runs ticked")
            self.show()
            return
        self.notify("This project's sweeps have no runs yet.", severity="warning")

    def loaded(self) -> None:
        self._name_list()
        self.call_after_refresh(self.show)

    def focus_first_field(self) -> None:
        self.query_one("#compare-runs").focus()

    def chosen(self) -> list[tuple[int, RunSeries]]:
        """The ticked runs, by their number in the list, read from their folders."""
        found = []
        for index in sorted(self.query_one("#compare-runs", SelectionList).selected):
            try:
                found.append((index + 1, self._series(self.runs[index])))
            except LLMLabError:
                continue  # a run folder without events yet: nothing to draw
        return found

    def _series(self, run_dir: Path) -> RunSeries:
        """The run read again when its events or its final model's scores changed since last read."""
        files = (run_dir / METRICS_FILE, results_file(run_dir / FINAL))
        stamp = tuple(file.stat().st_mtime if file.is_file() else 0.0 for file in files)
        cached = self._read.get(run_dir)
        if cached is None or cached[0] != stamp:
            cached = self._read[run_dir] = (stamp, read_run(run_dir))
        return cached[1]

    def on_selection_list_selected_changed(self) -> None:
        self.show()

    def on_select_changed(self) -> None:
        self.show()

    def action_cycle(self, which: str) -> None:
        select, values = self.query_one(f"#{which}", Select), self.choices[which]
        select.value = values[(values.index(select.value) + 1) % len(values)] if select.value in values else values[0]

    def action_reread(self) -> None:
        self._read.clear()
        self.show()

    def show(self) -> None:
        """Chart, measure choices and table for the ticked runs."""
        runs = self.chosen()
        measure = self._measures({m for _, run in runs for m in run.points})
        axis = self.query_one("#axis", Select).value
        drawn = [(f"[{n}]", *run.series(measure, axis)) for n, run in runs]
        self.lines = [line for line in drawn if line[1]]  # a run without this measure draws nothing
        self.query_one(ChartPanel).draw(measure, self.lines)  # the axis shows under it
        self._table(runs)

    def _measures(self, found: set[str]) -> str:
        """Offer the ticked runs' measures; keep the chosen one when it is still there."""
        select = self.query_one("#measure", Select)
        names = order_measures(found) or [DEFAULT_MEASURE]
        current = select.value if select.value in names else names[0]
        if self.choices["measure"] != names:
            self.choices["measure"] = names
            with self.prevent(Select.Changed):
                select.set_options([(name, name) for name in names])
                select.value = current
        return current

    def _table(self, runs: list[tuple[int, RunSeries]]) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        if not runs:
            return
        table.add_columns("final / differs", *(f"[{n}]" for n, _ in runs))
        finals = [run.final() for _, run in runs]
        for measure in final_measures([run for _, run in runs]):
            table.add_row(measure, *(format_value(final.get(measure)) for final in finals))
        for key, values in config_diff([run_config(run.run_dir) for _, run in runs]).items():
            table.add_row(key, *map(format_value, values))


def _short(name: str) -> str:
    """`pretrain-20261201-231038` → `pretrain-231038` (the day is the same for most runs compared)."""
    stage, _, rest = name.partition("-")
    return f"{stage}-{rest.split('-', 1)[1]}" if rest.count("-") >= 1 else name
