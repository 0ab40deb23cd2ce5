"""Forms generated from engine.project dataclasses: one row per field, values read back as TOML data.

A `FieldSet` edits one table of project.toml (say `model` or `pretrain.datasets[0]`): a field with
choices becomes a Select, a boolean a TickBox (`[x] true` / `[ ] false`), a string an Input of
plain text, anything else an Input of an inline TOML value (`1e-3`, `[0.9, 0.95]`,
`{prompt = "question"}`) read as `llmlab run --set` reads it, so a typing mistake gets the same
words as on the command line. Problems found by engine.project show under the row they name (a
rule across fields under each of them); `FieldHelp` shows the focused field's meaning and rule
(engine/project/descriptions.py).

A set made `deferred` first draws each row as one line of text (its label and its value as the
editor draws it), and builds and mounts the labels and editors when `hydrate()` is called: a
Select or an Input is many times the cost of a line of text, so a screen can paint its whole form
at once and make it editable a moment later (screens/base.py FormScreen holds the keys typed in
between).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widget import AwaitMount, Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from engine.project import Problem, project_to_dict
from engine.project.descriptions import field_help
from engine.project.overrides import format_value, override_value
from llmlab_tui.widgets.ordered_input import OrderedInput

LABEL_WIDTH, EDITOR_WIDTH = 26, 44  # a row's label and its editor at most (app.tcss .field-label, .field-line)


@dataclass(frozen=True)
class FieldSpec:
    """One editable field: its TOML key, current value, the choices when it has a fixed set, and
    its help when the schema has none for its path (a field only the app shows)."""

    name: str
    value: Any
    choices: tuple[str, ...] | None = None
    help: str = ""


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
    """A label, the editor for one value, and the problem line under it (when there is one).
    `deferred`: label and value drawn as one line of text until `hydrate()` puts the label and
    the editor in its place."""

    def __init__(self, spec: FieldSpec, path: str, deferred: bool = False) -> None:
        super().__init__(classes="field-row")
        self.spec, self.path = spec, path
        self.help = spec.help or field_help(path) or ""
        self.editor: Widget | None = None if deferred else _editor(spec, field_id(path))
        self.problem = Static("", classes="field-problem")

    def compose(self) -> ComposeResult:
        yield self._line() if self.editor is not None else Static(self._sketch(), classes="field-sketch")

    def _line(self) -> Horizontal:
        return Horizontal(Label(self.spec.name, classes="field-label"), self.editor, classes="field-line")

    def _sketch(self) -> Content:
        """The line as the label and the editor draw it (the label's width is app.tcss's)."""
        label, value = self.spec.name.ljust(LABEL_WIDTH), _drawn_value(self.spec).ljust(EDITOR_WIDTH)
        return Content.assemble(label, (value, "$foreground on $surface"))  # the label: the line's colour

    def hydrate(self) -> AwaitMount | None:
        """Put the label and the editor in the sketch's place (None when they are there already, or
        the row is not built yet)."""
        sketch = next(iter(self.query(".field-sketch")), None)
        if self.editor is not None or sketch is None:
            return None
        self.editor = _editor(self.spec, field_id(self.path))
        mounted = self.mount(self._line(), before=sketch)
        sketch.remove()
        return mounted

    @property
    def value(self) -> Any:
        """The edited value (text that is not a TOML value stays text, as `--set` reads it, and the
        schema's type check names it); ValueError when a non-text field is empty."""
        editor = self.editor
        if editor is None:  # not editable yet: as loaded
            return self.spec.value
        if isinstance(editor, Select):  # NULL until mounted
            return self.spec.value if editor.value is Select.NULL else editor.value
        if isinstance(editor, Checkbox):
            return editor.value
        if isinstance(self.spec.value, str):
            return editor.value
        if not editor.value.strip():
            raise ValueError("a value is required")
        return override_value(editor.value)

    def on_descendant_focus(self) -> None:
        self.add_class("-focused")  # the label highlight (app.tcss); :focus-within does not restyle the label

    def on_descendant_blur(self) -> None:
        self.remove_class("-focused")

    def show_problem(self, text: str) -> None:
        """Show `text` under the row ("" hides it); the line is mounted when first needed (most
        rows never have one, and each widget costs the first frame)."""
        self.problem.update(text)
        self.problem.display = bool(text)
        self.set_class(bool(text), "-invalid")
        if text and self.problem.parent is None and self.is_mounted:
            self.mount(self.problem)


def _drawn_value(spec: FieldSpec) -> str:
    """The value as its editor draws it (the text a deferred row shows until its editor is there)."""
    if spec.choices:
        return _choice_label(spec.value)
    if isinstance(spec.value, bool):
        return TickBox.drawn(spec.value)
    return _input_text(spec.value)


def _choice_label(value: Any) -> str:
    return str(value) or "(none)"


def _input_text(value: Any) -> str:
    """A value as its Input holds it: text as it is, anything else as a TOML value."""
    return value if isinstance(value, str) else format_value(value)


def _editor(spec: FieldSpec, widget_id: str) -> Widget:
    if spec.choices:
        options = list(spec.choices) + ([spec.value] if spec.value not in spec.choices else [])
        return Select(
            [(_choice_label(o), o) for o in options], value=spec.value, allow_blank=False, compact=True, id=widget_id
        )
    if isinstance(spec.value, bool):
        return TickBox(value=spec.value, compact=True, id=widget_id)
    return OrderedInput(_input_text(spec.value), compact=True, id=widget_id)


class TickBox(Checkbox):
    """A checkbox whose states differ in any colours: `[x] true` / `[ ] false` (TOML's words)."""

    @staticmethod
    def drawn(value: bool) -> str:
        return "[x] true" if value else "[ ] false"

    def render(self) -> Content:
        return Content(self.drawn(self.value)).stylize_before(self.get_visual_style("toggle--label"))


class FormScroll(VerticalScroll, can_focus=False, inherit_bindings=False):
    """The scrolling body of a form: never a Tab stop itself (it scrolls to the focused field),
    and without the scroll keys, so PageUp / PageDown reach the screen's section jumps."""


class FieldHelp(Static):
    """The line under a form: what the focused field means, its unit and its rule (from the schema)."""

    def show_for(self, widget: Widget | None) -> None:
        row = next((a for a in widget.ancestors_with_self if isinstance(a, FieldRow)), None) if widget else None
        self.update(Content.assemble((f"{row.spec.name}: ", "bold"), row.help) if row and row.help else "")


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
        self,
        specs: list[FieldSpec],
        prefix: str,
        title: str = "",
        table: str | None = None,
        deferred: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(classes="field-set", **kwargs)
        self.prefix, self.title, self.table = prefix, title, table
        self.rows = {spec.name: FieldRow(spec, f"{prefix}.{spec.name}", deferred) for spec in specs}

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
            related = [p for p in problems if row.path in p.also]  # its field's name says which rule
            row.show_problem("\n".join([p.message for p in mine] + [str(p) for p in related]) if row.display else "")
            claimed += mine + related
        return claimed

    def hydrate(self) -> list[AwaitMount]:
        """Give every deferred row its editor; the mounts to await."""
        return [mounted for row in self.rows.values() if (mounted := row.hydrate()) is not None]

    @property
    def editable(self) -> bool:
        """Every row has its editor."""
        return all(row.editor is not None for row in self.rows.values())

    def first_field(self) -> Widget | None:
        """The first shown editor of the set (where a jump to the set lands)."""
        editors = (row.editor for row in self.rows.values() if row.display and row.editor is not None)
        return next((editor for editor in editors if editor.focusable), None)

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
