"""Key-only helpers for pilot tests: move the focus with Tab, type, pick in a Select, and wait for
a condition instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmlab_tui.app import LabApp
from llmlab_tui.screens.base import FormScreen


async def wait_for(
    pilot,
    condition: Callable[[], object],
    tries: int = 200,
    delay: float | None = None,
    explain: Callable[[], str] | None = None,
) -> None:
    """Let the app work until `condition()` holds (fails after `tries` idle waits, each at least
    `delay` seconds: give one when a worker process needs the CPU; `explain()` says what was seen)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(delay)
    raise AssertionError(f"condition never held: {condition}" + (f"\n{explain()}" if explain else ""))


async def show(pilot, key: str, screen_type):
    """Press a screen's key and wait until that screen is shown with its project read; return it."""
    await pilot.press(key)
    return await shown(pilot, screen_type)


async def shown(pilot, screen_type):
    """Wait until a `screen_type` is shown with its project read and, on a form, every field
    editable (keys wait for that by themselves; a test that reads the widgets must too)."""
    ready = lambda screen: not isinstance(screen, FormScreen) or screen.editable.is_set()
    screen = lambda: pilot.app.screen
    await wait_for(pilot, lambda: isinstance(screen(), screen_type) and screen().project and ready(screen()))
    return screen()


async def tab_to(pilot, widget_id: str, limit: int = 120, key: str = "tab") -> None:
    """Press Tab (or `key`: shift+tab) until the widget with `widget_id` has the focus."""
    for _ in range(limit):
        if pilot.app.focused is not None and pilot.app.focused.id == widget_id:
            return
        await pilot.press(key)
    raise AssertionError(f"Tab never reached #{widget_id} (focus: {pilot.app.focused})")


async def type_into(pilot, widget_id: str, text: str) -> None:
    """Focus an input with Tab, clear it with Ctrl+U (delete to the start) and End, and type."""
    await tab_to(pilot, widget_id)
    await pilot.press("end", "ctrl+u", *text)


async def choose(pilot, widget_id: str, value: str, key: str = "tab") -> None:
    """Pick `value` in a Select with keys: move to it, open it, type to search, Enter."""
    await tab_to(pilot, widget_id, key=key)
    await pilot.press("enter", *value, "enter")
    await wait_for(pilot, lambda: pilot.app.focused.value == value)


async def run_palette(pilot, query: str) -> None:
    """Open the command palette, type `query`, and run the first command found."""
    await pilot.press("ctrl+p", *query)
    commands = lambda: pilot.app.screen.query("CommandList")
    await wait_for(pilot, lambda: commands() and commands().first().option_count)
    await pilot.press("enter")


def app_on(project: Path | None, projects_dir: Path) -> LabApp:
    return LabApp(project, projects_dir=projects_dir)
