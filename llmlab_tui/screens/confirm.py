"""Modal dialogs: a yes/no confirmation, and a name prompt that shows the engine's refusal inline."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from engine.project import LLMLabError
from llmlab_tui.widgets.ordered_input import OrderedInput


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True only on Yes (y), False on No (n / Escape)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class NameScreen(ModalScreen[str | None]):
    """Ask for a name (and a template, when `templates` are given); `accept` does the work.

    `accept(name, template)` raises LLMLabError to refuse: its lines show under the input and the
    dialog stays open. Dismisses with the name once accepted, None on Escape.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="name.cancel"),
        # Enter on the closed template dropdown creates (space or down opens it)
        Binding("enter", "accept", "Create", show=False, priority=True, id="name.accept"),
    ]

    def __init__(
        self,
        title: str,
        accept: Callable[[str, str], object],
        templates: tuple[str, ...] = (),
        placeholder: str = "name, then Enter",
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.accept, self.templates, self.placeholder = title, accept, templates, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-question")
            yield OrderedInput(placeholder=self.placeholder, id="name")
            if self.templates:
                with Horizontal(classes="field-line"):
                    yield Label("template", classes="field-label")
                    yield Select(
                        [(t, t) for t in self.templates],
                        value=self.templates[0],
                        allow_blank=False,
                        compact=True,
                        id="template",
                    )
            yield Static("", id="name-problem", classes="problems")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "accept":  # elsewhere Enter keeps its meaning (submit the name, pick an option)
            return isinstance(self.focused, Select) and not self.focused.expanded
        return super().check_action(action, parameters)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_accept()

    def action_accept(self) -> None:
        """Hand the name and template to `accept`; its refusal shows under the input."""
        name = self.query_one("#name", Input).value.strip()
        template = self.query_one("#template", Select).value if self.templates else ""
        try:
            self.accept(name, str(template))
        except LLMLabError as error:
            self.query_one("#name-problem", Static).update(str(error))
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)
