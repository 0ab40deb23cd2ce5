"""The line at the top of every screen: each screen's key and title, the shown one marked, and what
is open (so the footer keeps its room for the shown screen's own keys).

When the line is too narrow for every title and the detail (80 columns hold the titles and six
characters more), the other screens show their keys alone, and a detail still too long loses its
start ("…/projects/demo"), never its end.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label

PADDING = 2  # the cells each label's CSS padding adds (app.tcss .nav-item, .nav-detail)


class NavBar(Horizontal):
    """`F1 Projects  F2 Architecture  ...  · detail`, built from the app's screen registry."""

    def __init__(self, current: str, detail: str = "") -> None:
        super().__init__(classes="nav-bar")
        self.current, self.detail = current, detail
        self.modified = False  # the shown screen holds edits not saved

    def compose(self) -> ComposeResult:
        for name in self.app.SCREEN_ENTRIES:
            label = Label(self._title(name), classes="nav-item", id=f"nav-{name}")
            label.set_class(name == self.current, "-current")
            yield label
        yield Label(self.detail, classes="nav-detail")

    def _title(self, name: str, compact: bool = False) -> str:
        entry = self.app.SCREEN_ENTRIES[name]
        key = entry.key.upper()
        if name != self.current:
            return key if compact else f"{key} {entry.title}"
        return f"{key} {entry.title}{' •' if self.modified else ''}"

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        """Titles and detail as they fit in `width` cells (compact titles first, then a cut detail)."""
        if width <= 0:
            return
        names = list(self.app.SCREEN_ENTRIES)
        full = sum(len(self._title(n)) + PADDING for n in names) + len(self.detail) + PADDING
        compact = full > width
        for name, label in zip(names, self.query(".nav-item").results(Label)):
            label.update(self._title(name, compact))
        room = width - sum(len(self._title(n, compact)) + PADDING for n in names) - PADDING
        detail = self.detail if len(self.detail) <= room else "…" + self.detail[-max(room - 1, 0) :]
        self.query_one(".nav-detail", Label).update(detail)

    def set_detail(self, detail: str) -> None:
        self.detail = detail
        self.query_one(".nav-detail", Label).update(detail)
        self._fit(self.size.width)

    def set_modified(self, modified: bool) -> None:
        """Mark the shown screen's title while it holds edits not saved (`F2 Architecture •`)."""
        self.modified = modified
        self.query_one(f"#nav-{self.current}", Label).set_class(modified, "-modified")
        self._fit(self.size.width)
