"""The question asked when quitting during a run: stop it with a checkpoint, or leave it running."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label

ANSWERS = {"stop": "Stop (s)", "leave": "Leave running (l)", "stay": "Cancel (esc)"}


class QuitScreen(ModalScreen[str]):
    """Dismisses with "stop", "leave" or "stay"."""

    BINDINGS = [
        Binding("s", "answer('stop')", "Stop & quit", id="quit.stop"),
        Binding("l", "answer('leave')", "Leave running", id="quit.leave"),
        Binding("escape,n", "answer('stay')", "Cancel", id="quit.stay"),
    ]

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                "A run is going. Stop it with a checkpoint before quitting, or leave it running? "
                "(It keeps writing its metrics.jsonl; the monitor follows it when you come back.)",
                classes="dialog-question",
            )
            with Horizontal(classes="dialog-buttons"):
                for answer, title in ANSWERS.items():
                    yield Button(title, id=answer, compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stay", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
