"""Edits are never lost or skipped silently: leaving a screen that holds edits not saved yet (a
screen's key, Escape, quitting) asks to save or discard them, and a run starts only once the
forms' edits are saved (so it trains what the screens show, not an older project.toml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from llmlab_tui.screens.base import FormScreen

T = TypeVar("T")


def unsaved_screens(app) -> dict[str, FormScreen]:
    """The app's screens that hold edits not saved, by name (screens never shown hold none)."""
    found = {}
    for name in app.SCREEN_ENTRIES:
        try:
            stack = app.get_screen_stack(name)
        except KeyError:
            continue
        for screen in stack:
            if isinstance(screen, FormScreen) and screen.dirty:
                found[name] = screen
    return found


def title(app, name: str) -> str:
    entry = app.SCREEN_ENTRIES[name]
    return f"{entry.key.upper()} {entry.title}"


def leave(app, then: Callable[[], T]) -> T | None:
    """Run `then` (show another screen, quit) once the shown screen holds no unsaved edits: ask first.
    What `then` returned when it ran at once; None when the question was asked."""
    screen, name = app.screen, app.current_mode
    if not (isinstance(screen, FormScreen) and screen.dirty):
        return then()
    _ask(app, {name: screen}, then, f"{title(app, name)} has edits not saved to project.toml.")
    return None


def saved_first(app, then: Callable[[], object]) -> bool:
    """True when no screen holds unsaved edits; else ask to save them (then run `then`) and return False."""
    screens = unsaved_screens(app)
    if not screens:
        return True
    names = ", ".join(title(app, name) for name in screens)
    _ask(app, screens, then, f"{names}: edits not saved. The run trains project.toml as saved: save them first?")
    return False


def _ask(app, screens: dict[str, FormScreen], then: Callable[[], object], question: str) -> None:
    from llmlab_tui.screens.quit import UnsavedScreen  # dialogs load when first asked, as QuitScreen does

    async def answered(answer: str) -> None:
        if answer == "save":
            for screen in screens.values():
                screen.action_save()
            if any(screen.dirty for screen in screens.values()):
                return  # a problem blocked saving; its note says which
        elif answer == "discard":
            for screen in screens.values():
                await screen.reload()
        else:
            return
        then()

    app.push_screen(UnsavedScreen(f"{question} Save, discard them, or stay?"), answered)
