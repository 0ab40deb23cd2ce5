"""What the project screens share: the message that opens a project, and loading the open one.

A `ProjectScreen` reads the app's `project_path` each time it is shown and loads the project again
when another one was opened, or when the file changed on disk and the screen holds no edits.
"""

from __future__ import annotations

from pathlib import Path

from textual.message import Message
from textual.screen import Screen

from engine.project import PROJECT_FILE, LLMLabError, Problem, Project, project_from_dict
from llmlab_tui.editing import load_dict


class OpenProject(Message):
    """Ask the app to make `path` the open project (None: close it, e.g. once deleted)."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.path = path


class ProjectScreen(Screen):
    """A screen that edits the open project (`self.project`, None until one loads).

    The app builds a screen when it is first shown; the open project is read then, before the
    first compose, so the first frame already shows it (no empty frame, no second compose)."""

    def __init__(self) -> None:
        super().__init__()
        self.project: Project | None = None
        self.load_problems: list[Problem] = []
        self._stamp: tuple[Path, float] | None = None
        self._check_pending = False
        self._load()

    def on_mount(self) -> None:
        self.loaded()
        self.focus_first_field()

    @property
    def dirty(self) -> bool:
        """Whether the screen holds edits not saved yet."""
        return False

    def _file_stamp(self) -> tuple[Path, float] | None:
        path = self.app.project_path
        file = path / PROJECT_FILE if path else None
        return (path, file.stat().st_mtime) if file and file.is_file() else None

    async def on_screen_resume(self) -> None:
        stamp = self._file_stamp()
        moved = stamp is None or self._stamp is None or stamp[0] != self._stamp[0]
        if stamp != self._stamp and (moved or not self.dirty):
            await self.reload()

    async def reload(self) -> None:
        """Load the open project from disk and rebuild the screen from it."""
        self._load()
        await self.recompose()
        self.loaded()
        self.focus_first_field()

    def _load(self) -> None:
        """Read the open project (its problems instead, when it does not load)."""
        self._stamp = self._file_stamp()
        self.project, self.load_problems = None, []
        if self._stamp is not None:
            try:
                self.project = project_from_dict(load_dict(self._stamp[0]), self._stamp[0])
            except LLMLabError as error:
                self.load_problems = error.problems

    def focus_first_field(self) -> None:
        """Put the focus on the first editable field, so typing starts at the top of the form."""
        fields = [widget for widget in self.query(".field-line > *") if widget.focusable]
        if fields:
            fields[0].focus()

    def loaded(self) -> None:
        """Called after the screen was rebuilt for a newly loaded project."""

    def check(self) -> list[Problem]:
        """Show the edits' problems where they belong and return them (here: the load's)."""
        return self.load_problems

    def check_soon(self) -> None:
        """Run `check` once after the messages queued now: a burst of edits (a paste, the Changed
        events of a form being mounted) costs one check, not one per key."""
        if not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._pending_check)

    def _pending_check(self) -> None:
        self._check_pending = False
        self.check()

    def saved(self, project: Project) -> None:
        """Record that `project` is now what the file holds."""
        self.project, self._stamp = project, self._file_stamp()
