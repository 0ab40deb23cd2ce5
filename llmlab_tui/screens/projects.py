"""The projects screen: the projects of a directory with their size and runs; new, open, copy, delete.

Enter opens the highlighted project (the app then shows its architecture); the dialogs for a new
name and for deleting are in screens/confirm.py; the listing itself is llmlab_tui/catalog.py.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from engine.project import TEMPLATES_DIR
from llmlab_tui.catalog import ProjectRow, create_project, delete_project, duplicate_project, list_projects
from llmlab_tui.editing import shown_path
from llmlab_tui.screens.base import OpenProject
from llmlab_tui.screens.confirm import ConfirmScreen, NameScreen
from llmlab_tui.summary import count
from llmlab_tui.widgets.nav import NavBar

COLUMNS = ("name", "parameters", "stages done", "last run", "state")


def templates() -> tuple[str, ...]:
    """The project templates the engine ships, the demo first."""
    names = sorted(p.stem for p in TEMPLATES_DIR.glob("*.toml"))
    return tuple(sorted(names, key=lambda n: n != "demo"))


def cells(row: ProjectRow) -> tuple[str, ...]:
    if row.problem:
        return row.name, "invalid", "", "", row.problem
    return (
        row.name,
        count(row.parameters),
        " ".join(row.stages_done) or "-",
        row.last_run or "-",
        row.last_state or "",
    )


class ProjectsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open", id="projects.open"),
        Binding("n", "new", "New", id="projects.new"),
        Binding("d", "duplicate", "Duplicate", id="projects.duplicate"),
        Binding("x,delete", "delete", "Delete", id="projects.delete"),
        Binding("r", "refresh", "Refresh", show=False, id="projects.refresh"),
        Binding("j", "cursor('down')", show=False, id="projects.down"),
        Binding("k", "cursor('up')", show=False, id="projects.up"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[ProjectRow] = []

    def compose(self) -> ComposeResult:
        yield NavBar("projects", shown_path(self.directory))
        table = DataTable(id="projects-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Footer()

    @property
    def directory(self) -> Path:
        return self.app.projects_dir

    def on_screen_resume(self) -> None:
        self.action_refresh()

    def action_refresh(self, select: Path | None = None) -> None:
        """List the projects again, the cursor on `select` (else where it was, else the open project)."""
        current = self.highlighted
        select = select or (current.path if current else self.app.project_path)
        self.rows = list_projects(self.directory)
        self.query_one(NavBar).set_detail(shown_path(self.directory))
        table = self.query_one(DataTable)
        table.clear()
        for row in self.rows:
            table.add_row(*cells(row), key=str(row.path))
        paths = [row.path.resolve() for row in self.rows]
        target = (select or Path()).resolve()
        if target in paths:
            table.move_cursor(row=paths.index(target))
        table.focus()

    @property
    def highlighted(self) -> ProjectRow | None:
        table = self.query_one(DataTable)
        return self.rows[table.cursor_row] if self.rows and 0 <= table.cursor_row < len(self.rows) else None

    def action_cursor(self, direction: str) -> None:
        getattr(self.query_one(DataTable), f"action_cursor_{direction}")()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        row = self.highlighted
        if row is None:
            return
        if row.problem:
            self.notify(f"{row.name}: {row.problem}", severity="warning")
        self.post_message(OpenProject(row.path))

    def action_new(self) -> None:
        def accept(name: str, template: str) -> None:
            create_project(self.directory, name, template)

        def created(name: str | None) -> None:
            if name:
                self.action_refresh(self.directory / name)
                self.notify(f"Created {self.directory / name}")

        self.app.push_screen(NameScreen("New project: its name", accept, templates()), created)

    def action_duplicate(self) -> None:
        row = self.highlighted
        if row is None:
            return

        def copied(name: str | None) -> None:
            if name:
                self.action_refresh(row.path.parent / name)

        accept = lambda name, _template: duplicate_project(row.path, name)
        self.app.push_screen(NameScreen(f"Duplicate {row.name} (runs stay behind) as:", accept), copied)

    def action_delete(self) -> None:
        row = self.highlighted
        if row is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                delete_project(row.path)
                self.notify(f"Deleted {row.path}")
                if self.app.project_path == row.path.resolve():
                    self.post_message(OpenProject(None))
                self.action_refresh()

        question = f"Delete {row.path} and all its runs? This cannot be undone."
        self.app.push_screen(ConfirmScreen(question), answered)
