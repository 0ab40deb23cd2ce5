"""The form of one stage table ([pretrain], [sft], ...), generated from its engine.project dataclass.

Sections: the training fields every stage has; the optimizer and the scheduler, whose own settings
follow the chosen name (OPTIMIZER_DEFAULTS / SCHEDULER_DEFAULTS); the datasets, an editable list
showing each weight's share; the LoRA panel; and the stage's own fields (init, RLHF settings).
A field added to a dataclass appears here without edits. Each FieldSet carries the key it fills in
the stage table (`FieldSet.table`); what a stage has follows its base class (FineTuneConfig: LoRA).
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from engine.project import (
    OPTION_CHOICES,
    STAGES,
    DatasetConfig,
    FineTuneConfig,
    OptimizerConfig,
    Problem,
    SchedulerConfig,
    StageConfig,
    project_to_dict,
)
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
        yield FieldSet(
            dataclass_specs(config, skip=[f.name for f in fields(config) if f.name not in TRAINING_FIELDS]),
            s,
            "Training",
            id=f"{s}-training",
        )
        for table, named in self._named().items():
            yield self._named_set(table, named.name, named.options)
        with Vertical(id=f"{s}-datasets", classes="dataset-list"):
            yield from self._dataset_sets(project_to_dict(config.datasets))
        if isinstance(config, FineTuneConfig):
            yield FieldSet(dataclass_specs(config.lora), f"{s}.lora", "LoRA", table="lora", id=f"{s}-lora")
        own = dataclass_specs(config, skip=TRAINING_FIELDS + SECTIONS)
        if own:
            yield FieldSet([self._picked(spec) for spec in own], s, f"{s.upper()} settings", id=f"{s}-own")

    def _named(self) -> dict[str, OptimizerConfig | SchedulerConfig]:
        """The saved tables chosen by name, under their keys (those of overrides.NAMED)."""
        return {"optimizer": self.config.optimizer, "scheduler": self.config.scheduler}

    def _named_set(self, table: str, name: str, options: dict[str, Any]) -> FieldSet:
        return FieldSet(
            named_specs(table, name, options),
            f"{self.stage}.{table}",
            table.title(),
            table=table,
            id=f"{self.stage}-{table}",
        )

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
        return [
            FieldSet(
                dataclass_specs(DatasetConfig(**_known(t))),
                f"{self.stage}.datasets[{i}]",
                dataset_title(i, fractions[i]),
                table="datasets",
                id=f"{self.stage}-dataset-{i}",
            )
            for i, t in enumerate(tables)
        ]

    def show_rows(self) -> None:
        """Rows that apply to the current choices: LoRA target_modules for the custom preset only."""
        if isinstance(self.config, FineTuneConfig):
            lora = self.query_one(f"#{self.stage}-lora", FieldSet)
            lora.show("target_modules", lora.rows["preset"].value == "custom")

    def sets(self) -> list[FieldSet]:
        return list(self.query(FieldSet))

    def dataset_sets(self) -> list[FieldSet]:
        """The datasets' sets, in the order of the list."""
        return [field_set for field_set in self.sets() if field_set.table == "datasets"]

    def table(self) -> tuple[dict[str, Any], list[Problem]]:
        """The edited stage table, and a problem per value that does not parse."""
        table: dict[str, Any] = {}
        problems: list[Problem] = []
        datasets = []
        for field_set in self.sets():
            values, bad = field_set.values()
            problems += bad
            if field_set.table is None:
                table.update(values)
            elif field_set.table == "datasets":
                datasets.append(values)
            else:
                table[field_set.table] = values
        table["datasets"] = datasets
        return table, problems

    def update_shares(self) -> None:
        """Retitle the datasets with each weight's normalized share."""
        dataset_sets = self.dataset_sets()
        weights = []
        for field_set in dataset_sets:
            try:
                weights.append(field_set.rows["weight"].value)
            except ValueError:
                weights.append(None)
        for i, (field_set, share) in enumerate(zip(dataset_sets, shares(weights))):
            field_set.set_title(dataset_title(i, share))

    async def replace_named(self, old: FieldSet) -> None:
        """Rebuild an optimizer / scheduler set for its newly chosen name, with that one's defaults."""
        name = old.rows["name"].value
        if name == old.rows["name"].spec.value:
            return
        saved = self._named()[old.table]
        options = saved.options if name == saved.name else copy.deepcopy(NAMED[old.table].REGISTRY[name])
        new = self._named_set(old.table, name, options)
        place = self.children.index(old)
        await old.remove()
        await self.mount(new, before=place)  # the datasets' list always follows
        new.rows["name"].editor.focus()

    async def set_datasets(self, tables: list[dict]) -> None:
        container = self.query_one(f"#{self.stage}-datasets")
        await container.remove_children()
        await container.mount_all(self._dataset_sets(tables))

    def dataset_tables(self) -> list[dict]:
        return self.table()[0]["datasets"]

    def dataset_index(self, widget: Widget | None) -> int | None:
        """The index of the dataset holding `widget`, if any."""
        dataset_sets = self.dataset_sets()
        for ancestor in widget.ancestors_with_self if widget else []:
            if ancestor in dataset_sets:
                return dataset_sets.index(ancestor)
        return None


def _known(table: dict) -> dict:
    """The keys of a dataset table that DatasetConfig knows (the rest is reported by validation)."""
    names = {f.name for f in fields(DatasetConfig)}
    return {k: v for k, v in table.items() if k in names}
