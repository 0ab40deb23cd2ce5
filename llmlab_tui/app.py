"""The LLM-Lab app: the registry of screens, the global keys, the theme, and which project is open.

Each screen is a Textual mode (its own screen stack) shown by its global key; Escape goes back to
the screen shown before. The app holds the open project (`project_path`, `projects_dir`); screens
read it when shown and ask to change it with a message (attributes down, messages up); `stage` is
the stage chosen on the stages or the monitor screen (widgets/stage_select.py). Leaving a screen
with unsaved edits asks first (unsaved.py).
No torch, transformers, datasets or peft here or below (tests/llmlab_tui/test_imports.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import AwaitMount

from engine.project import PROJECT_FILE, STAGES
from llmlab_tui.screens.base import FormScreen, OpenProject
from llmlab_tui.unsaved import leave

if TYPE_CHECKING:
    from llmlab_tui.runner import Job, Runner


@dataclass(frozen=True)
class ScreenEntry:
    """A screen of the app: the key that shows it, its title, and how to build it."""

    key: str
    title: str
    screen: str  # "module:Class", imported when the screen is first shown (keeps start-up fast)
    needs_project: bool = True

    def factory(self) -> Screen:
        module, name = self.screen.split(":")
        return getattr(importlib.import_module(module), name)()


def lab_commands() -> type:
    """The app's command-palette entries (llmlab_tui/commands.py), imported when the palette opens."""
    from llmlab_tui.commands import LabCommands

    return LabCommands


HOLD_KEYS_S = 10.0  # the longest keys are held for a form's editors (they take tenths of a second)

# The app's screens, in footer order.
SCREENS: dict[str, ScreenEntry] = {
    "projects": ScreenEntry("f1", "Projects", "llmlab_tui.screens.projects:ProjectsScreen", needs_project=False),
    "architecture": ScreenEntry("f2", "Architecture", "llmlab_tui.screens.architecture:ArchitectureScreen"),
    "stages": ScreenEntry("f3", "Stages", "llmlab_tui.screens.stages:StagesScreen"),
    "monitor": ScreenEntry("f4", "Monitor", "llmlab_tui.screens.monitor:MonitorScreen"),
    "chat": ScreenEntry("f5", "Chat", "llmlab_tui.screens.chat:ChatScreen"),
    "tools": ScreenEntry("f6", "Tools", "llmlab_tui.screens.tools:ToolsScreen"),
    "compare": ScreenEntry("f7", "Compare", "llmlab_tui.screens.compare:CompareScreen"),
    "inspect": ScreenEntry("f8", "Inspect", "llmlab_tui.screens.inspect:InspectScreen"),
}


class LabApp(App):
    """The keyboard-driven lab: projects → architecture → stages → (monitor, chat, tools)."""

    TITLE = "LLM-Lab"
    CSS_PATH = "app.tcss"
    SCREEN_ENTRIES = SCREENS
    MODES = {name: entry.factory for name, entry in SCREENS.items()}
    DEFAULT_MODE = "projects"
    COMMANDS = App.COMMANDS | {lab_commands}
    BINDINGS = [
        # shown on every screen's top line (widgets/nav.py), so the footer keeps room for the screen's keys
        *(
            Binding(e.key, f"go('{name}')", e.title, show=False, priority=True, id=f"screen.{name}")
            for name, e in SCREENS.items()
        ),
        # Focus moves as Tab arrives (priority: before the next key is routed), not once the key has
        # bubbled back up from the field it left, by which time the keys typed after it went there too
        Binding("tab", "focus_next", "Next field", show=False, priority=True, id="app.focus_next"),
        Binding("shift+tab", "focus_previous", "Previous field", show=False, priority=True, id="app.focus_previous"),
        Binding("question_mark", "keys", "Keys", id="app.keys"),
        Binding("escape", "back", "Back", id="app.back"),
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.force_quit"),
    ]

    project_path: reactive[Path | None] = reactive(None)
    stage: reactive[str] = reactive(STAGES[0])

    def __init__(self, project_path: Path | None = None, projects_dir: Path | None = None) -> None:
        # a project given: start on its architecture, never building the projects screen (a faster start)
        self.DEFAULT_MODE = "architecture" if project_path else "projects"
        super().__init__()
        self.projects_dir = projects_dir or (project_path.parent if project_path else Path("projects"))
        self.set_reactive(LabApp.project_path, project_path)
        self._history: list[str] = ["projects"] if project_path else []  # Escape still leads to F1
        self._runner: Runner | None = None
        self._held_keys: list[events.Key | events.Paste] = []  # typed while a form was not editable (on_event)

    @property
    def runner(self) -> Runner:
        """The worker processes (llmlab_tui/runner.py)."""
        return self.start_runner()

    def start_runner(self) -> Runner:
        """Make the runner unless made: after the first frame (on_ready), or at first use if sooner.
        It starts the helper process spawned workers' queues need (the resource tracker), so it must
        come before any screen starts a worker; the first paint needs neither."""
        if self._runner is None:
            from llmlab_tui.runner import Runner

            self._runner = Runner()
        return self._runner

    def on_ready(self) -> None:
        self.start_runner()

    async def on_event(self, event: events.Event) -> None:
        # A key typed while the form on screen is getting its editors (or the form of a stage just
        # picked) is held, with every key after it, and handed back in order once the form is
        # editable: each lands where it would have, had the form been there from the start. Held,
        # not awaited: the app's queue goes on meanwhile (Textual's deferred focus changes, the
        # bindings of keys already handed to a widget).
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            if self._held_keys or not self._form_editable():
                self._held_keys.append(event)
                if len(self._held_keys) == 1:
                    self.run_worker(self._release_held_keys(), group="held-keys")
                return
        await super().on_event(event)

    def _form_editable(self) -> bool:
        """Whether the screen shown is not a form, or a form with all its editors."""
        screen = self.screen if self._screen_stack else None
        return not isinstance(screen, FormScreen) or screen.editable.is_set()

    async def _until_form_editable(self) -> None:
        """Wait (HOLD_KEYS_S at most) until `_form_editable()`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_KEYS_S):
                while not self._form_editable():
                    await self.screen.editable.wait()

    async def _release_held_keys(self) -> None:
        await self._until_form_editable()
        held, self._held_keys = self._held_keys, []
        for event in held:  # copies: a message is handled once
            copy = events.Key(event.key, event.character) if isinstance(event, events.Key) else events.Paste(event.text)
            self.post_message(copy)

    async def _shutdown(self) -> None:
        await self._until_form_editable()  # a Select torn down while it mounts raises (Textual 8.2)
        await super()._shutdown()

    def on_unmount(self) -> None:
        if self._runner is not None:
            self._runner.shutdown()

    def training_job(self) -> Job | None:
        """The training run this app drives or follows, if any."""
        from llmlab_tui.runner import TRAIN_JOB

        return self._runner.running(TRAIN_JOB) if self._runner is not None else None

    def action_quit(self) -> None:
        """Quit; with unsaved edits or during a run, ask first (save them; stop the run or leave it)."""
        leave(self, self._quit)

    def _quit(self) -> None:
        from llmlab_tui.runner import FileSource
        from llmlab_tui.screens.quit import QuitScreen

        job = self.training_job()
        if job is None or isinstance(job.source, FileSource):
            self.exit()
        else:
            self.push_screen(QuitScreen(), self._quit_answered)

    def _quit_answered(self, answer: str) -> None:
        job = self.training_job()
        if job is None:
            self.exit()
        elif answer == "leave":
            job.detach()
            self.exit(message=f"The run goes on in process {job.source.pid}; reopen the project to watch it.")
        elif answer == "stop":
            job.stop()
            self.notify("Stopping: the app quits once the checkpoint is saved.")
            self.set_interval(0.2, lambda: self.training_job() or self.exit())

    def action_show(self, name: str) -> AwaitMount | None:
        """Switch to a registered screen (refused, with a note, when it needs a project and none is
        open); the switch to await, None when there is none now (refused, or asking about edits)."""
        if SCREENS[name].needs_project and self.project_path is None:
            self.notify("Open a project first (F1: projects).", severity="warning")
            return None
        if name == self.current_mode:
            return None
        return leave(self, lambda: self._switch(name))

    async def action_go(self, name: str) -> None:
        """A screen's key: the next key is taken once the screen is there (a priority binding, so a
        burst such as "F3 Tab 7" types the 7 on F3, not in the field F2 had focused)."""
        switched = self.action_show(name)
        if switched is not None:
            await switched
            await self.screen.wait_for_refresh()  # its resume (a reload, the first field's focus) done

    def _switch(self, name: str) -> AwaitMount:
        self._history.append(self.current_mode)
        return self.switch_mode(name)

    def action_keys(self) -> None:
        """The keys dialog for the shown screen (screens/keys.py)."""
        from llmlab_tui.screens.keys import KeysScreen

        if not isinstance(self.screen, KeysScreen):
            self.push_screen(KeysScreen(self.screen, SCREENS[self.current_mode].title))

    def action_back(self) -> None:
        """Show the screen shown before this one (skipping those that need a closed project)."""
        leave(self, self._back)

    def _back(self) -> None:
        while self._history:
            name = self._history.pop()
            if self.project_path is not None or not SCREENS[name].needs_project:
                self.switch_mode(name)
                return

    def open_project(self, path: Path | None) -> None:
        """Make `path` the open project and show its architecture (None: no project open)."""
        self.project_path = path.resolve() if path else None
        if self.project_path is not None:
            self.projects_dir = self.project_path.parent
            self.action_show("architecture")

    def on_open_project(self, message: OpenProject) -> None:
        self.open_project(message.path)


def project_dir(path: Path) -> Path:
    """The project directory named by a directory or its project.toml."""
    return path.parent if path.name == PROJECT_FILE else path


def run_app(project_path: Path | None = None) -> int:
    """Run the app on a project (or on the projects screen); returns the exit status."""
    LabApp(project_dir(project_path).resolve() if project_path else None).run()
    return 0
