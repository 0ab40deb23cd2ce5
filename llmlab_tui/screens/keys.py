"""The keys dialog (`?`, or "Keys of this screen" in the palette): every key of the screen it was
opened on, then the field that has the focus, then the app's keys, each with what it does.

Read from Textual's active bindings of that screen, so a key added to a screen's BINDINGS shows
here without edits; a key whose action is off at the moment (say Stop reply while nothing
streams) is marked so.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, Static

GROUPS = ("this screen", "the focused field", "everywhere")


def key_rows(screen: Screen) -> dict[str, list[tuple[str, str, bool]]]:
    """(keys, what they do, enabled now) for each group, from `screen`'s active bindings; the keys
    of one action are joined (`x, delete`)."""
    found: dict[str, dict[tuple[str, str], tuple[list[str], bool]]] = {group: {} for group in GROUPS}
    active = [(key, a.binding, a.node, a.enabled) for key, a in screen.active_bindings.items()]
    off = [  # the screen's keys its check_action turns off now (absent from the active ones)
        (key, binding, screen, False)
        for binding in Binding.make_bindings(type(screen).BINDINGS)
        for key in binding.key.split(",")
        if key not in screen.active_bindings
    ]
    for key, binding, node, enabled in active + off:
        group = "this screen" if node is screen else "everywhere" if isinstance(node, App) else GROUPS[1]
        what = binding.description or binding.action.replace("_", " ")
        keys, _ = found[group].setdefault((binding.action, what), ([], enabled))
        keys.append(screen.app.get_key_display(Binding(key, binding.action)))
    return {
        group: [(", ".join(keys), what, enabled) for (_, what), (keys, enabled) in rows.items()]
        for group, rows in found.items()
        if rows
    }


def keys_content(rows: dict[str, list[tuple[str, str, bool]]]) -> Content:
    parts: list = []
    for group, lines in rows.items():
        parts.append((f"{group}\n", "$text-accent bold"))
        width = max(len(keys) for keys, _, _ in lines)
        for keys, what, enabled in lines:
            parts += [(f"  {keys:<{width}}  ", "bold"), (what + ("" if enabled else " (not now)") + "\n", "")]
        parts.append("\n")
    return Content.assemble(*parts)


class KeysScreen(ModalScreen[None]):
    """Lists the keys of `screen`; Escape (or ?) closes it."""

    BINDINGS = [Binding("escape,question_mark", "close", "Close", id="keys.close")]

    def __init__(self, screen: Screen, title: str) -> None:
        super().__init__(classes="dialog-screen")
        self.rows, self.title_text = key_rows(screen), title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="keys-dialog"):
            yield Label(f"Keys: {self.title_text}", classes="dialog-question")
            with VerticalScroll(id="keys-body"):
                yield Static(keys_content(self.rows), id="keys-text")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
