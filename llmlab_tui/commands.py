"""The app's own command-palette entries (Ctrl+P): go to a screen, open a project, save, and the
main actions of every screen (start / stop a run, preview a dataset, merge, export, ...).

Commands are built from the app's screen registry and the projects on disk when the palette
opens, so a new screen or project appears here without edits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from llmlab_tui.catalog import list_projects

# The main actions, reachable from any screen: (title, screen, the screen's action, help).
ACTIONS = (
    ("Start run", "monitor", "start", "start the monitor's stage in a worker (s)"),
    ("Stop run (checkpoint)", "monitor", "stop", "checkpoint, then finish (x)"),
    ("Save checkpoint now", "monitor", "save_now", "the run writes a checkpoint (Ctrl+S on the monitor)"),
    ("Resume run", "monitor", "resume", "continue the shown stopped, died or diverged run in its folder (r)"),
    ("Preview dataset examples", "stages", "preview", "the shown stage's first examples (Ctrl+O)"),
    ("Open chat", "chat", "focus_input", "talk to a model of the project (F5)"),
    ("Stop reply", "chat", "stop_reply", "end the reply that streams; what came so far stays (Ctrl+G on chat)"),
    ("Regenerate reply", "chat", "regenerate", "sample the last reply again (Ctrl+R)"),
    ("Clear chat", "chat", "clear", "start a new conversation (Ctrl+L)"),
    ("Merge LoRA adapters", "tools", "merge", "bake the picked adapters into a full model (Ctrl+G)"),
    ("Export to Llama", "tools", "export", "write the picked model as a Llama directory (Ctrl+O)"),
    ("Train tokenizer", "tools", "tokenizer", "train the project's BPE (Ctrl+T)"),
    ("Inspect attention", "inspect", "view('attention')", "every head's attention on the text (1 on F8)"),
    ("Inspect logit lens", "inspect", "view('lens')", "each layer's next-token guess (2 on F8)"),
    ("Inspect token surprise", "inspect", "view('tokens')", "each token's loss in bits (3 on F8)"),
    ("Ablation table", "inspect", "view('ablate')", "the damage of removing each head, MLP, block (4, Ctrl+R)"),
)
READY_WAITS = 100  # × 20 ms: how long an action waits for its screen to load the open project


async def run_on(app, name: str, action: str) -> None:
    """Show screen `name`, wait until it has loaded the open project, and run its `action`."""
    app.action_show(name)
    if app.current_mode != name:
        return  # refused (no project open)
    screen = app.screen
    for _ in range(READY_WAITS):
        if getattr(screen, "project", None) is not None:
            break
        await asyncio.sleep(0.02)
    await screen.run_action(action)


class LabCommands(Provider):
    """Go to each screen, open each project, and run the shown screen's save."""

    def commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        found = [
            (f"Go to {entry.title}", partial(app.action_show, name), f"key {entry.key}")
            for name, entry in app.SCREEN_ENTRIES.items()
        ]
        found += [
            (f"Open project {row.name}", partial(app.open_project, row.path), str(row.path))
            for row in list_projects(app.projects_dir)
        ]
        found += [(title, partial(run_on, app, name, action), help_text) for title, name, action, help_text in ACTIONS]
        found.append(("Keys of this screen", app.action_keys, "every key here and what it does (?)"))
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
