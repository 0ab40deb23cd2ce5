"""Questions with a few answers, each on its own key: quitting during a run (stop it with a
checkpoint, or leave it running) and leaving edits not saved yet (save, discard, or stay)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label


class ChoiceScreen(ModalScreen[str]):
    """Dismisses with one of ANSWERS' keys; the last answer (the one that changes nothing) has the focus."""

    ANSWERS: ClassVar[dict[str, str]] = {}  # answer → its button's title, naming its key

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                for answer, title in self.ANSWERS.items():
                    yield Button(title, id=answer, compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(f"#{list(self.ANSWERS)[-1]}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class QuitScreen(ChoiceScreen):
    """Dismisses with "stop", "leave" or "stay"."""

    ANSWERS = {"stop": "Stop (s)", "leave": "Leave running (l)", "stay": "Cancel (esc)"}
    BINDINGS = [
        Binding("s", "answer('stop')", "Stop & quit", id="quit.stop"),
        Binding("l", "answer('leave')", "Leave running", id="quit.leave"),
        Binding("escape,n", "answer('stay')", "Cancel", id="quit.stay"),
    ]

    def __init__(self) -> None:
        super().__init__(
            "A run is going. Stop it with a checkpoint before quitting, or leave it running? "
            "(It keeps writing its metrics.jsonl; the monitor follows it when you come back.)"
        )


class UnsavedScreen(ChoiceScreen):
    """Dismisses with "save", "discard" or "stay"."""

    ANSWERS = {"save": "Save (s)", "discard": "Discard (d)", "stay": "Cancel (esc)"}
    BINDINGS = [
        Binding("s", "answer('save')", "Save", id="unsaved.save"),
        Binding("d", "answer('discard')", "Discard", id="unsaved.discard"),
        Binding("escape,n", "answer('stay')", "Cancel", id="unsaved.stay"),
    ]
