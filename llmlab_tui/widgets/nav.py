"""The line at the top of every screen: each screen's key and title, the shown one marked, and what
is open (so the footer keeps its room for the shown screen's own keys)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label


class NavBar(Horizontal):
    """`F1 Projects  F2 Architecture  ...  · detail`, built from the app's screen registry."""

    def __init__(self, current: str, detail: str = "") -> None:
        super().__init__(classes="nav-bar")
        self.current, self.detail = current, detail

    def compose(self) -> ComposeResult:
        for name, entry in self.app.SCREEN_ENTRIES.items():
            label = Label(f"{entry.key.upper()} {entry.title}", classes="nav-item", id=f"nav-{name}")
            label.set_class(name == self.current, "-current")
            yield label
        yield Label(self.detail, classes="nav-detail")

    def set_detail(self, detail: str) -> None:
        self.detail = detail
        self.query_one(".nav-detail", Label).update(detail)

    def set_modified(self, modified: bool) -> None:
        """Mark the shown screen's title while it holds edits not saved (`F2 Architecture •`)."""
        entry = self.app.SCREEN_ENTRIES[self.current]
        item = self.query_one(f"#nav-{self.current}", Label)
        item.update(f"{entry.key.upper()} {entry.title}{' •' if modified else ''}")
        item.set_class(modified, "-modified")
