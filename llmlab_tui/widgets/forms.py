"""Forms generated from engine.project dataclasses: one row per field, values read back as TOML data.

A `FieldSet` edits one table of project.toml (say `model` or `pretrain.datasets[0]`): a field with
choices becomes a Select, a boolean a Checkbox, a string an Input of plain text, anything else an
Input of an inline TOML value (`1e-3`, `[0.9, 0.95]`, `{prompt = "question"}`) — the syntax of
`llmlab run --set`. Problems found by engine.project show under the row they name.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from engine.project import Problem, project_to_dict
from engine.project.overrides import format_value, parse_value
from llmlab_tui.widgets.ordered_input import OrderedInput


@dataclass(frozen=True)
class FieldSpec:
    """One editable field: its TOML key, current value, and the choices when it has a fixed set."""

    name: str
    value: Any
    choices: tuple[str, ...] | None = None


def dataclass_specs(obj: Any, skip: Iterable[str] = ()) -> list[FieldSpec]:
    """A spec per plain field of a dataclass instance (nested tables and lists of tables left out)."""
    specs, hints = [], typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        nested = is_dataclass(hint) or any(is_dataclass(arg) for arg in typing.get_args(hint))
        if f.name in skip or f.name == "root" or nested:
            continue
        specs.append(FieldSpec(f.name, project_to_dict(value), f.metadata.get("choices")))
    return specs


def field_id(path: str) -> str:
    """A widget id for a dotted TOML path: `pretrain.datasets[0].weight` → `pretrain-datasets-0-weight`."""
    return re.sub(r"[.\[\]]+", "-", path).strip("-")


class FieldRow(Vertical):
    """A label, the editor for one value, and the problem line under it (hidden when fine)."""

    def __init__(self, spec: FieldSpec, path: str) -> None:
        super().__init__(classes="field-row")
        self.spec, self.path = spec, path
        self.editor = _editor(spec, field_id(path))
        self.problem = Static("", classes="field-problem")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.spec.name, classes="field-label")
            yield self.editor
        yield self.problem

    @property
    def value(self) -> Any:
        """The edited value; ValueError when the text is not a TOML value."""
        editor = self.editor
        if isinstance(editor, Select):  # NULL until mounted
            return self.spec.value if editor.value is Select.NULL else editor.value
        if isinstance(editor, Checkbox):
            return editor.value
        return editor.value if isinstance(self.spec.value, str) else parse_value(editor.value)

    def show_problem(self, text: str) -> None:
        self.problem.update(text)
        self.problem.display = bool(text)
        self.set_class(bool(text), "-invalid")


def _editor(spec: FieldSpec, widget_id: str) -> Widget:
    if spec.choices:
        options = list(spec.choices) + ([spec.value] if spec.value not in spec.choices else [])
        return Select(
            [(str(o) or "(none)", o) for o in options], value=spec.value, allow_blank=False, compact=True, id=widget_id
        )
    if isinstance(spec.value, bool):
        return Checkbox(value=spec.value, compact=True, id=widget_id)
    text = spec.value if isinstance(spec.value, str) else format_value(spec.value)
    return OrderedInput(text, compact=True, id=widget_id)


class FieldSet(Vertical):
    """The rows of one TOML table, addressed by `prefix` (`model`, `sft.lora`, `pretrain.datasets[0]`).

    `table` is the key its values fill in the table the enclosing form builds (`lora`, `datasets`),
    None when its rows sit in that table itself (a stage's training fields).
    """

    class Changed(Message):
        """A value in the set was edited."""

        def __init__(self, field_set: FieldSet, name: str) -> None:
            super().__init__()
            self.field_set, self.name = field_set, name

    def __init__(
        self, specs: list[FieldSpec], prefix: str, title: str = "", table: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(classes="field-set", **kwargs)
        self.prefix, self.title, self.table = prefix, title, table
        self.rows = {spec.name: FieldRow(spec, f"{prefix}.{spec.name}") for spec in specs}

    def compose(self) -> ComposeResult:
        if self.title:
            yield Label(self.title, classes="field-set-title")
        yield from self.rows.values()

    def set_title(self, title: str) -> None:
        self.title = title
        self.query_one(".field-set-title", Label).update(title)

    def values(self) -> tuple[dict[str, Any], list[Problem]]:
        """The edited table and a problem per shown value that does not parse (a hidden one keeps
        its loaded value)."""
        values, problems = {}, []
        for name, row in self.rows.items():
            try:
                values[name] = row.value
            except ValueError as error:
                values[name] = row.spec.value
                if row.display:
                    problems.append(Problem(row.path, str(error)))
        return values, problems

    def show(self, name: str, shown: bool) -> None:
        self.rows[name].display = shown

    def show_problems(self, problems: list[Problem]) -> list[Problem]:
        """Put each problem under the row it names; returns the problems this set claimed."""
        claimed = []
        for row in self.rows.values():
            mine = [p for p in problems if p.field == row.path]
            row.show_problem("\n".join(p.message for p in mine) if row.display else "")
            claimed += mine
        return claimed

    def _changed(self, widget: Widget) -> None:
        for name, row in self.rows.items():
            if row.editor is widget:
                self.post_message(self.Changed(self, name))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed(event.input)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed(event.select)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._changed(event.checkbox)
