"""What the project screens share: the message that opens a project, and loading the open one.

A `ProjectScreen` reads the app's `project_path` each time it is shown and loads the project again
when another one was opened, or when the file changed on disk and the screen holds no edits.
A `FormScreen` edits it (architecture, stages): keys that jump between the form's sections, the
focused field's help under the form, and the nav bar's mark while edits are not saved. Its
deferred FieldSets (widgets/forms.py) get their editors right after the frame that first shows
them (the fields drawn as text); until then `editable` is clear and the app holds every key typed
(app.py), so none is lost.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from engine.project import PROJECT_FILE, LLMLabError, Problem, Project, project_from_dict
from llmlab_tui.editing import load_dict
from llmlab_tui.widgets.forms import FieldHelp, FieldSet
from llmlab_tui.widgets.nav import NavBar

HYDRATE_AFTER_S = 0.05  # from a form screen's first Show to building its editors


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
            self.set_focus(fields[0])  # now, not after the keys already queued (Widget.focus defers)

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


class FormScreen(ProjectScreen):
    """A screen of FieldSets with Ctrl+S to save (`action_save`) and `dirty` while edits are not saved."""

    # Keys that move the focus are priority bindings: the app runs them as it reads them, so keys
    # typed right after (a burst) go to the field they moved to, not to the one they left.
    BINDINGS = [
        Binding(
            "pagedown,ctrl+down", "section(1)", "Section", key_display="PgDn", priority=True, id="form.next_section"
        ),
        Binding(
            "pageup,ctrl+up", "section(-1)", "Section", key_display="PgUp", priority=True, id="form.previous_section"
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.editable = asyncio.Event()  # every field has its editor (keys wait for it: app.py)

    def on_show(self) -> None:
        # Textual holds the terminal's first frame back until its start-up batch has ended and the
        # screen's queue reaches it; a moment's wait lets that frame (values as text) out first
        self.set_timer(HYDRATE_AFTER_S, self.hydrate)

    async def reload(self) -> None:
        self.editable.clear()
        await super().reload()
        await self.hydrate()

    async def hydrate(self) -> None:
        """Give the deferred fields their editors, then put the focus on the first one; `editable`
        once every field has one (or the building failed: the keys held are let go)."""
        try:
            mounts = [mounted for field_set in self.query(FieldSet) for mounted in field_set.hydrate()]
            if mounts:
                await asyncio.gather(*mounts)
                self.focus_first_field()
        except BaseException:
            self.editable.set()
            raise
        if all(field_set.editable for field_set in self.query(FieldSet)):
            self.editable.set()

    def action_save(self) -> None:
        raise NotImplementedError

    def action_section(self, step: int) -> None:
        """Focus the first field of the next (step 1) or previous (-1) section shown, round the form."""
        chain = self.focus_chain
        sets = [field_set for field_set in self.query(FieldSet) if field_set.first_field() in chain]
        if not sets:
            return
        here = next((a for a in self.focused.ancestors if a in sets), None) if self.focused else None
        index = sets.index(here) + step if here else (0 if step > 0 else -1)
        target = sets[index % len(sets)]
        self.set_focus(target.first_field())  # at once (focus() waits): the keys typed next land there
        target.scroll_visible(top=True, animate=False)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        for field_help in self.query(FieldHelp):
            field_help.show_for(event.widget)

    def mark_modified(self) -> None:
        """Show on the nav bar whether the screen holds edits not saved."""
        for nav in self.query(NavBar):
            nav.set_modified(self.dirty)

    def saved(self, project: Project) -> None:
        super().saved(project)
        self.mark_modified()
