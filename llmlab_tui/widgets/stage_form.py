"""The form of one stage table ([pretrain], [sft], ...), generated from its engine.project dataclass.

Sections: the training fields every stage has; the optimizer and the scheduler, whose own settings
follow the chosen name (OPTIMIZER_DEFAULTS / SCHEDULER_DEFAULTS); the datasets, an editable list
showing each weight's share; the LoRA panel; and the stage's own fields (init, RLHF settings).
A field added to a dataclass appears here without edits.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from engine.project import OPTION_CHOICES, STAGES, DatasetConfig, Problem, StageConfig, project_to_dict
from engine.project.overrides import NAMED
from llmlab_tui.editing import shares
from llmlab_tui.widgets.forms import FieldSet, FieldSpec, dataclass_specs

TRAINING_FIELDS = tuple(f.name for f in fields(StageConfig))
SECTIONS = ("optimizer", "scheduler", "datasets", "lora")  # tables with their own editors
PICKED = ("init", "reference")  # fields chosen among the project's stages and model directories


def named_specs(table: str, name: str, options: dict[str, Any]) -> list[FieldSpec]:
    """`name` (choices: the registry's keys) and that optimizer's / scheduler's own settings."""
    registry = NAMED[table].REGISTRY
    settings = [FieldSpec(key, value, OPTION_CHOICES.get(key)) for key, value in options.items()]
    return [FieldSpec("name", name, tuple(registry))] + settings


def dataset_title(index: int, share: float | None) -> str:
    return f"Dataset {index + 1} · share {'?' if share is None else f'{share:.0%}'}"


class StageForm(Vertical):
    """Every field of one stage; `table()` gives the edited stage table as TOML data."""

    def __init__(self, stage: str, config: StageConfig, model_dirs: list[str], **kwargs: Any) -> None:
        super().__init__(classes="stage-form", **kwargs)
        self.stage, self.config, self.model_dirs = stage, config, model_dirs

    def compose(self) -> ComposeResult:
        s, config = self.stage, self.config
        yield FieldSet(dataclass_specs(config, skip=[f.name for f in fields(config) if f.name not in TRAINING_FIELDS]),
                       s, "Training", id=f"{s}-training")
        for table in ("optimizer", "scheduler"):
            named = getattr(config, table)
            yield FieldSet(named_specs(table, named.name, named.options), f"{s}.{table}", table.title(),
                           id=f"{s}-{table}")
        with Vertical(id=f"{s}-datasets", classes="dataset-list"):
            yield from self._dataset_sets(project_to_dict(config.datasets))
        if hasattr(config, "lora"):
            yield FieldSet(dataclass_specs(config.lora), f"{s}.lora", "LoRA", id=f"{s}-lora")
        own = dataclass_specs(config, skip=TRAINING_FIELDS + SECTIONS)
        if own:
            yield FieldSet([self._picked(spec) for spec in own], s, f"{s.upper()} settings", id=f"{s}-own")

    def _picked(self, spec: FieldSpec) -> FieldSpec:
        """`init` / `reference` as a choice of stage names and model directories found in runs/."""
        if spec.name not in PICKED:
            return spec
        choices = [""] if spec.name == "reference" else []
        choices += [stage for stage in STAGES if stage != self.stage]
        choices += self.model_dirs
        return FieldSpec(spec.name, spec.value, tuple(dict.fromkeys(choices)))

    def _dataset_sets(self, tables: list[dict]) -> list[FieldSet]:
        fractions = shares([t.get("weight") for t in tables])
        return [FieldSet(dataclass_specs(DatasetConfig(**_known(t))), f"{self.stage}.datasets[{i}]",
                         dataset_title(i, fractions[i]), id=f"{self.stage}-dataset-{i}")
                for i, t in enumerate(tables)]

    def show_rows(self) -> None:
        """Rows that apply to the current choices: LoRA target_modules for the custom preset only."""
        if hasattr(self.config, "lora"):
            lora = self.query_one(f"#{self.stage}-lora", FieldSet)
            lora.show("target_modules", lora.rows["preset"].value == "custom")

    def sets(self) -> list[FieldSet]:
        return list(self.query(FieldSet))

    def table(self) -> tuple[dict[str, Any], list[str]]:
        """The edited stage table, and a problem line per value that does not parse."""
        table: dict[str, Any] = {}
        problems: list[Problem] = []
        datasets = []
        for field_set in self.sets():
            values, bad = field_set.values()
            problems += bad
            section = field_set.id.removeprefix(f"{self.stage}-")
            if section in ("training", "own"):
                table.update(values)
            elif section.startswith("dataset-"):
                datasets.append(values)
            else:
                table[section] = values
        table["datasets"] = datasets
        return table, problems

    def update_shares(self) -> None:
        """Retitle the datasets with each weight's normalized share."""
        dataset_sets = list(self.query_one(f"#{self.stage}-datasets").query(FieldSet))
        weights = []
        for field_set in dataset_sets:
            try:
                weights.append(field_set.rows["weight"].value)
            except ValueError:
                weights.append(None)
        for i, (field_set, share) in enumerate(zip(dataset_sets, shares(weights))):
            field_set.set_title(dataset_title(i, share))

    async def replace_named(self, table: str) -> None:
        """Rebuild an optimizer / scheduler set for its newly chosen name, with that one's defaults."""
        old = self.query_one(f"#{self.stage}-{table}", FieldSet)
        name = old.rows["name"].value
        if name == old.rows["name"].spec.value:
            return
        saved = getattr(self.config, table)
        options = saved.options if name == saved.name else copy.deepcopy(NAMED[table].REGISTRY[name])
        new = FieldSet(named_specs(table, name, options), old.prefix, old.title, id=old.id)
        await old.remove()
        await self.mount(new, after=self.query_one(f"#{self.stage}-{'optimizer' if table == 'scheduler' else 'training'}"))
        new.rows["name"].editor.focus()

    async def set_datasets(self, tables: list[dict]) -> None:
        container = self.query_one(f"#{self.stage}-datasets")
        await container.remove_children()
        await container.mount_all(self._dataset_sets(tables))

    def dataset_tables(self) -> list[dict]:
        return self.table()[0]["datasets"]

    def dataset_index(self, widget: Widget | None) -> int | None:
        """The index of the dataset holding `widget`, if any."""
        for ancestor in widget.ancestors_with_self if widget else []:
            if isinstance(ancestor, FieldSet) and ancestor.id.startswith(f"{self.stage}-dataset-"):
                return int(ancestor.id.rsplit("-", 1)[1])
        return None


def _known(table: dict) -> dict:
    """The keys of a dataset table that DatasetConfig knows (the rest is reported by validation)."""
    names = {f.name for f in fields(DatasetConfig)}
    return {k: v for k, v in table.items() if k in names}
