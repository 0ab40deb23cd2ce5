"""The stages screen with keys only: the optimizer's own fields follow its name, saving writes them,
datasets show their shares, LoRA's target_modules only for custom, and the `llmlab run` preview;
plus the pure editing helpers (the preview's --set lines replay through engine.project)."""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import project as schema
from engine.project import (
    OPTIMIZER_DEFAULTS,
    Project,
    apply_overrides,
    load_project,
    project_from_dict,
    project_to_dict,
)
from engine.project.overrides import format_value, parse_value, set_overrides
from llmlab_tui.editing import shares
from llmlab_tui.screens.stages import StagesScreen
from tests.llmlab_tui.pilot_keys import app_on, choose, tab_to, type_into, wait_for


def _toml(project_dir):
    return tomllib.loads((project_dir / "project.toml").read_text())


async def _open(pilot):
    await pilot.press("f3")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, StagesScreen) and pilot.app.screen.project)
    return pilot.app.screen


def _options(select):
    return tuple(value for _, value in select._options)


async def test_changing_the_optimizer_shows_its_fields_and_saves_them(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await choose(pilot, "pretrain-optimizer-name", "muon")
        rows = lambda: screen.query_one("#pretrain-optimizer").rows
        await wait_for(pilot, lambda: list(rows()) == ["name", *OPTIMIZER_DEFAULTS["muon"]])
        assert [s.table for s in screen.current_form().sets()][:3] == [None, "optimizer", "scheduler"]
        await type_into(pilot, "pretrain-optimizer-momentum", "0.9")
        preview = screen.query_one("#stage-preview")
        await wait_for(pilot, lambda: "--set pretrain.optimizer.momentum=0.9" in str(preview.render()))
        assert "--set pretrain.optimizer.name=muon" in str(preview.render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _toml(alpha)["pretrain"]["optimizer"]["name"] == "muon")
        await wait_for(pilot, lambda: str(preview.render()).endswith("--stage pretrain"))
    assert load_project(alpha).pretrain.optimizer.options == {**OPTIMIZER_DEFAULTS["muon"], "momentum": 0.9}
    written = _toml(alpha)["pretrain"]["optimizer"]  # muon's defaults stay implied, the old adamw settings go
    assert {key: written[key] for key in ("name", "momentum")} == {"name": "muon", "momentum": 0.9}
    assert all(
        value == OPTIMIZER_DEFAULTS["muon"][key] for key, value in written.items() if key not in ("name", "momentum")
    )


async def test_a_rule_across_fields_blocks_saving(projects_dir):
    alpha = projects_dir / "alpha"
    before = (alpha / "project.toml").read_text()
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await type_into(pilot, "pretrain-seq_len", "4096")
        row = screen.query_one("#pretrain-training").rows["seq_len"]
        await wait_for(pilot, lambda: str(row.problem.render()) == "must not exceed model.max_seq_len (512), got 4096")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("Not saved" in n.message for n in app._notifications))
    assert (alpha / "project.toml").read_text() == before


async def test_datasets_add_weights_and_shares(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        count = len(load_project(alpha).pretrain.datasets)
        await tab_to(pilot, "pretrain-steps")
        await pilot.press("ctrl+n")
        new = f"pretrain-dataset-{count}"
        await wait_for(pilot, lambda: screen.query(f"#{new}"))
        await type_into(pilot, f"pretrain-datasets-{count}-path", "more.txt")
        await type_into(pilot, f"pretrain-datasets-{count}-weight", str(3.0 * count))
        title = lambda: str(screen.query_one(f"#{new} .field-set-title").render())
        await wait_for(pilot, lambda: title().endswith("share 75%"))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(_toml(alpha)["pretrain"]["datasets"]) == count + 1)
        assert _toml(alpha)["pretrain"]["datasets"][-1]["path"] == "more.txt"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not screen.query(f"#{new}"))


async def test_sft_lora_panel_and_choices_equal_the_engines(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        assert _options(screen.query_one("#stage-select")) == schema.STAGES
        assert _options(screen.query_one("#pretrain-optimizer-name")) == schema.OPTIMIZERS
        assert _options(screen.query_one("#pretrain-scheduler-name")) == schema.SCHEDULERS
        await choose(pilot, "stage-select", "dpo", key="shift+tab")
        await wait_for(pilot, lambda: screen.query("#dpo-lora"))
        assert _options(screen.query_one("#dpo-lora-preset")) == schema.LORA_PRESETS
        assert _options(screen.query_one("#dpo-loss_type")) == schema.DPO_LOSS_TYPES
        assert _options(screen.query_one("#dpo-init"))[:4] == ("pretrain", "sft", "ppo", "grpo")
        lora = screen.query_one("#dpo-lora")
        assert not lora.rows["target_modules"].display
        await choose(pilot, "dpo-lora-preset", "custom", key="shift+tab")
        await wait_for(pilot, lambda: lora.rows["target_modules"].display)
        await wait_for(pilot, lambda: "needs at least one module" in str(lora.rows["target_modules"].problem.render()))


def test_format_and_parse_are_inverse():
    for value in [1, 2.5e-4, 'a "quoted" text', True, [0.9, 0.95], {"name": "regex", "pattern": "\\d+"}, []]:
        assert parse_value(format_value(value)) == value


stage_changes = st.fixed_dictionaries(
    {},
    optional={
        "steps": st.integers(1, 10**6),
        "seq_len": st.integers(1, 4096),
        "lr": st.floats(1e-6, 1.0),
        "sample_prompt": st.text(max_size=8),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stage_changes, st.sampled_from(list(OPTIMIZER_DEFAULTS)))
def test_preview_sets_replay_through_the_engine(changes, optimizer):
    """The --set lines, applied by engine.project to the saved file, give the edited project."""
    saved = project_to_dict(Project())
    stage = {
        **saved["pretrain"],
        **changes,
        "optimizer": {"name": optimizer, **OPTIMIZER_DEFAULTS[optimizer], "weight_decay": 0.5},
        "datasets": [{"path": "a.txt", "weight": 2.0}],
    }
    sets = set_overrides(saved["pretrain"], stage, "pretrain")
    assert project_from_dict(apply_overrides(saved, sets)) == project_from_dict({**saved, "pretrain": stage})


def test_shares():
    assert shares([1, 3]) == [0.25, 0.75]
    assert shares([0, 0]) == [None, None]
    assert shares(["x", 2]) == [None, 1.0]
