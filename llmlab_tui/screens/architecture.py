"""The architecture screen: the tokenizer and [model] of project.toml, checked while typing.

Every rule is engine.project's: the edited tables go through project_from_dict + validate_project
at each change, each problem shows under the field it names (a rule across fields under each),
and Ctrl+S saves only when there are none. Beside the form: parameters, FLOPs per token, memory to
train, head dim, a block diagram; under it the focused field's help (screens/base.py FormScreen).
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Static

from engine.project import LLMLabError, Problem, Project, project_from_dict, project_problems, project_to_dict
from llmlab_tui.editing import save_sections
from llmlab_tui.screens.base import FormScreen
from llmlab_tui.summary import block_diagram, model_size, size_lines
from llmlab_tui.widgets.forms import FieldHelp, FieldSet, FieldSpec, FormScroll, dataclass_specs
from llmlab_tui.widgets.nav import NavBar

HUB = "hub id or path"
TOKENIZER_KINDS = ("bytes", "bpe", HUB)
# Which rows each choice shows: (field set, row) → when it is shown, given the edited values
SHOWN_WHEN = {
    ("tokenizer", "hub_id_or_path"): lambda t, m: t["source"] == HUB,
    ("tokenizer", "trust_remote_code"): lambda t, m: t["source"] == HUB,
    ("tokenizer", "vocab_size"): lambda t, m: t["source"] == "bpe",
    ("tokenizer", "train_text"): lambda t, m: t["source"] == "bpe",
    ("model", "n_kv_heads"): lambda t, m: m["attention"] == "gqa",
    ("model", "rope_theta"): lambda t, m: m["positional_encoding"] in ("rope", "yarn"),
    ("model", "yarn_factor"): lambda t, m: m["positional_encoding"] == "yarn",
    ("model", "yarn_original_max_seq_len"): lambda t, m: m["positional_encoding"] == "yarn",
}


def tokenizer_specs(project: Project) -> list[FieldSpec]:
    """The tokenizer form: `source` split into its kind and, for the hub or a path, the id."""
    source = project.tokenizer.source
    kind = source if source in TOKENIZER_KINDS[:2] else HUB
    specs = [
        FieldSpec("source", kind, TOKENIZER_KINDS, help=f"bytes, bpe, or {HUB} (below) — the kind of tokenizer"),
        FieldSpec("hub_id_or_path", "" if kind != HUB else source, help="a hub id (gpt2) or a local tokenizer folder"),
    ]
    return specs + dataclass_specs(project.tokenizer, skip=["source"])


def tokenizer_table(values: dict[str, Any]) -> dict[str, Any]:
    """The [tokenizer] table from the form's values."""
    table = dict(values)
    path = table.pop("hub_id_or_path")
    if table["source"] == HUB:
        table["source"] = path
    return table


def model_table(values: dict[str, Any]) -> dict[str, Any]:
    """The [model] table; mqa and mha leave n_kv_heads out, so the engine implies it."""
    return {k: v for k, v in values.items() if k != "n_kv_heads" or values["attention"] == "gqa"}


class ArchitectureScreen(FormScreen):
    BINDINGS = [Binding("ctrl+s", "save", "Save", id="architecture.save")]

    def compose(self) -> ComposeResult:
        yield NavBar("architecture", self.project.name if self.project else "no project")
        with Horizontal(id="arch-body"):
            with FormScroll(id="arch-form"):
                if self.project is not None:
                    tokenizer, model = tokenizer_specs(self.project), dataclass_specs(self.project.model)
                    yield FieldSet(tokenizer, "tokenizer", "Tokenizer", deferred=True, id="tokenizer")
                    yield FieldSet(model, "model", "Model", deferred=True, id="model")
                yield Static("\n".join(map(str, self.load_problems)), id="arch-problems", classes="problems")
            yield Static("", id="arch-summary")
        yield FieldHelp(id="field-help")
        yield Footer()

    def loaded(self) -> None:
        self.check()

    def edited(self) -> tuple[dict[str, Any], dict[str, Any], list[Problem]]:
        """The edited [tokenizer] and [model] tables, and the values that do not parse."""
        tokenizer, bad_tokenizer = self.query_one("#tokenizer", FieldSet).values()
        model, bad_model = self.query_one("#model", FieldSet).values()
        return tokenizer_table(tokenizer), model_table(model), bad_tokenizer + bad_model

    @property
    def dirty(self) -> bool:
        if self.project is None:
            return False
        tokenizer, model, bad = self.edited()
        saved = project_to_dict(self.project)
        return bool(bad) or (tokenizer, model) != (saved["tokenizer"], saved["model"])

    def on_field_set_changed(self, event: FieldSet.Changed) -> None:
        self.check_soon()

    def check(self) -> list[Problem]:
        """Show which rows apply, every problem under its row, and the summary; returns the problems."""
        if self.project is None:
            return self.load_problems
        sets = {"tokenizer": self.query_one("#tokenizer", FieldSet), "model": self.query_one("#model", FieldSet)}
        raw = {name: field_set.values()[0] for name, field_set in sets.items()}
        for (set_name, row), rule in SHOWN_WHEN.items():
            sets[set_name].show(row, rule(raw["tokenizer"], raw["model"]))
        tokenizer, model, problems = self.edited()
        data = {**project_to_dict(self.project), "tokenizer": tokenizer, "model": model}
        problems = problems or project_problems(data, self.project.root)
        claimed = [p for field_set in sets.values() for p in field_set.show_problems(problems)]
        others = [p for p in problems if p not in claimed]
        self.query_one("#arch-problems", Static).update("\n".join(map(str, others)))
        self._summarize(data, problems)
        self.mark_modified()
        return problems

    def _summarize(self, data: dict, problems: list[Problem]) -> None:
        summary = self.query_one("#arch-summary", Static)
        if problems:
            summary.update(f"{len(problems)} problem(s): fix them to see the sizes and the block.")
            return
        project = project_from_dict(data, self.project.root)
        summary.update("\n".join(size_lines(model_size(project)) + [""] + block_diagram(project.model)))

    def action_save(self) -> None:
        problems = self.check()
        if problems:
            self.notify(f"Not saved: {len(problems)} problem(s) to fix first.", severity="error")
            return
        tokenizer, model, _ = self.edited()
        try:
            project = save_sections(self.project.root, {"tokenizer": tokenizer, "model": model})
        except LLMLabError as error:
            self.notify(str(error), severity="error")
            return
        self.saved(project)
        self.notify(f"Saved {project.file}")
