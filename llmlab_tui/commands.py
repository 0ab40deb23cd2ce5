"""The app's own command-palette entries (Ctrl+P): go to a screen, open a project, save.

Commands are built from the app's screen registry and the projects on disk when the palette
opens, so a new screen or project appears here without edits.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from llmlab_tui.catalog import list_projects


class LabCommands(Provider):
    """Go to each screen, open each project, and run the shown screen's save."""

    def commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        found = [(f"Go to {entry.title}", partial(app.action_show, name), f"key {entry.key}")
                 for name, entry in app.SCREEN_ENTRIES.items()]
        found += [(f"Open project {row.name}", partial(app.open_project, row.path), str(row.path))
                  for row in list_projects(app.projects_dir)]
        if hasattr(self.screen, "action_save"):
            found.append(("Save", self.screen.action_save, "write project.toml (Ctrl+S)"))
        return found

    async def discover(self) -> Hits:
        for title, callback, help_text in self.commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self.commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
