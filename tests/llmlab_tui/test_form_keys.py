"""The forms by keys alone, as a person over SSH types them (bursts with no pause, pastes):
focus always on a visible field, section jumps, the focused field's help from the schema, the
engine's words for a typing mistake at the field edited, edits never lost or skipped silently,
the stage shared by the stages and monitor screens, and F2's layout at 80×24 and 120×40."""

from __future__ import annotations

import tomllib

import pytest
from textual import events

from engine.project import apply_overrides, project_problems
from engine.project.descriptions import field_help
from llmlab_tui.runner import TRAIN_JOB
from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.screens.monitor import MonitorScreen
from llmlab_tui.screens.quit import UnsavedScreen
from llmlab_tui.screens.stages import StagesScreen
from llmlab_tui.widgets.forms import FieldRow, TickBox
from tests.llmlab_tui.pilot_keys import app_on, tab_to, wait_for

SIZES = [(80, 24), (120, 40)]


def _toml(project_dir):
    return tomllib.loads((project_dir / "project.toml").read_text())


async def _on(pilot, screen_type, key=None):
    if key:
        await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_type) and pilot.app.screen.project)
    await pilot.pause()
    return pilot.app.screen


def burst(app, *keys: str) -> None:
    """Hand every key to the app at once, as a terminal delivers a burst (no waiting between them)."""
    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


def _row(screen, path) -> FieldRow:
    return next(row for row in screen.query(FieldRow) if row.path == path)


def _problem(screen, path) -> str:
    row = _row(screen, path)
    return str(row.problem.render()) if row.problem.display else ""


@pytest.mark.parametrize("size", SIZES)
async def test_every_tab_stop_on_f2_and_f3_is_a_visible_field(projects_dir, size):
    app = app_on(projects_dir / "alpha", projects_dir)
    screens = [(ArchitectureScreen, None), (StagesScreen, "f3")]
    async with app.run_test(size=size) as pilot:
        for screen_type, key in screens if size == SIZES[0] else screens[:1]:  # F3's 35 stops: where rows scroll
            screen = await _on(pilot, screen_type, key)
            seen = []
            for _ in range(len(screen.focus_chain) + 1):
                await pilot.press("tab")
                await pilot.pause()
                focused = app.focused
                seen.append(focused.id)
                visible = focused.region.intersection(screen.region)
                assert visible.area > 0, f"#{focused.id} has the focus but is not on screen"
                assert focused.id == "stage-select" or focused.parent.has_class("field-line"), focused
                row = next((a for a in focused.ancestors if isinstance(a, FieldRow)), None)
                if row is not None:  # the focused row's label stands out from the others
                    label, other = row.query_one(".field-label"), screen.query(".field-label").last()
                    if other is not label:
                        assert label.styles.background != other.styles.background
            assert len(set(seen)) == len(screen.focus_chain)


async def test_a_boolean_reads_differently_on_and_off_and_takes_keys_and_pastes(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        await tab_to(pilot, "model-bias")
        box = app.focused
        assert isinstance(box, TickBox) and str(box.render()) == "[ ] false"
        await pilot.press("space", "space", "space")
        await wait_for(pilot, lambda: str(box.render()) == "[x] true")
        box.post_message(events.Paste("false"))  # a paste is no key: the box keeps its value
        await pilot.pause()
        assert box.value is True and screen.edited()[1]["bias"] is True


async def test_letters_in_a_number_field_get_the_engines_words_typed_or_pasted(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        await tab_to(pilot, "model-d_model")
        await pilot.press("end", "ctrl+u", "a", "b")  # one burst
        cli = [p.message for p in project_problems(apply_overrides(_toml(alpha), ["model.d_model=ab"]), alpha)]
        assert cli == ["expected a whole number, got 'ab'"]  # what `llmlab run --set` says
        await wait_for(pilot, lambda: _problem(screen, "model.d_model") == cli[0])
        await pilot.press("ctrl+u")
        app.focused.post_message(events.Paste("96"))
        await wait_for(pilot, lambda: _problem(screen, "model.d_model") == "")
        assert screen.edited()[1]["d_model"] == 96


async def test_a_paste_into_a_select_changes_nothing(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        await tab_to(pilot, "model-attention")
        app.focused.post_message(events.Paste("mqa"))
        await pilot.pause()
        assert app.focused.value == "gqa" and not screen.dirty


async def test_a_rule_across_fields_shows_at_the_field_edited(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        await tab_to(pilot, "model-n_kv_heads")
        await pilot.press("end", "backspace", "3")
        rule = "model.n_heads: must be divisible by model.n_kv_heads (3) for gqa, got 8"
        await wait_for(pilot, lambda: _problem(screen, "model.n_kv_heads") == rule)
        assert _problem(screen, "model.n_heads") == "must be divisible by model.n_kv_heads (3) for gqa, got 8"


async def test_the_help_line_shows_the_focused_fields_meaning_from_the_schema(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await _on(pilot, ArchitectureScreen)
        line = lambda: str(app.screen.query_one("#field-help").render())
        for field_id, path in (("model-d_model", "model.d_model"), ("model-attention", "model.attention")):
            await tab_to(pilot, field_id)
            await wait_for(pilot, lambda path=path: line() == f"{path.split('.')[-1]}: {field_help(path)}")
        await _on(pilot, StagesScreen, "f3")
        await tab_to(pilot, "pretrain-optimizer-betas")
        await wait_for(pilot, lambda: line().startswith("betas: ") and "each in [0, 1)" in line())


@pytest.mark.parametrize("size", SIZES)
async def test_section_keys_reach_lora_enabled_on_dpo_in_a_few_keys(projects_dir, size):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=size) as pilot:
        screen = await _on(pilot, StagesScreen, "f3")
        await pilot.pause(0.2)
        footer = " ".join(str(key.render()) for key in screen.query("FooterKey"))
        await pilot.press("ctrl+g", *"dpo", "enter")  # the stage picker, then the stage's name
        await wait_for(pilot, lambda: screen.stage == "dpo" and screen.query("#dpo-lora-enabled"))
        presses = 0
        while app.focused.id != "dpo-lora-enabled":
            await pilot.press("pagedown")
            presses += 1
            assert presses <= 8, app.focused
        assert app.focused.region.intersection(screen.region)
        await pilot.press("ctrl+up")
        assert app.focused.id != "dpo-lora-enabled"
        await pilot.press("ctrl+down")
        assert app.focused.id == "dpo-lora-enabled"
    assert "PgDn Section" in footer and "^g Stage" in footer


async def test_keys_typed_right_after_a_jump_land_where_it_went(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, StagesScreen, "f3")
        burst(app, "ctrl+g", *"dpo", "enter")
        await wait_for(pilot, lambda: screen.stage == "dpo" and screen.query("#dpo-steps"))
        assert screen.query_one("#pretrain-steps").value == str(screen.project.pretrain.steps)
        await wait_for(pilot, lambda: app.focused.id == "stage-select")
        await pilot.pause()  # the Select's own deferred refocus after its menu closed
        burst(app, "pagedown", "end", "0")  # the first field of dpo's Training section
        await wait_for(pilot, lambda: screen.query_one("#dpo-steps").value == f"{screen.project.dpo.steps}0")


@pytest.mark.parametrize("stage", ["dpo", "pretrain"])  # another stage, and the one shown (no switch)
async def test_keys_typed_right_after_picking_a_stage_land_in_its_form(projects_dir, stage):
    """Ctrl+G, the stage's name, Enter and the keys for its form in one burst (found in tmux: the
    PgDn went to the form being replaced)."""
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, StagesScreen, "f3")
        burst(app, "ctrl+g", *stage, "enter", "pagedown", "end", "0")
        steps = lambda name: screen.query_one(f"#{name}-steps").value
        await wait_for(pilot, lambda: screen.stage == stage and screen.query(f"#{stage}-steps"))
        await wait_for(pilot, lambda: steps(stage) == f"{screen.project.stage(stage).steps}0")
        await pilot.pause(0.3)
        assert app.focused.id == f"{stage}-steps"  # and the focus stays there (no deferred focus takes it back)
        if stage != "pretrain":
            assert steps("pretrain") == str(screen.project.pretrain.steps)


async def test_keys_typed_right_after_tabs_land_in_the_field_the_tabs_reached(projects_dir):
    """Tab ×k then editing keys in one burst (found in tmux: the digits after Tabs were lost)."""
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        chain = [widget.id for widget in screen.focus_chain]
        start = chain.index(app.focused.id)
        target = chain.index("model-n_layers")
        burst(app, *["tab"] * (target - start), "end", "backspace", "backspace", "backspace", "9", "6")
        await wait_for(pilot, lambda: screen.query_one("#model-n_layers").value == "96")
        burst(app, "shift+tab", "end", "0")  # back to d_model
        await wait_for(pilot, lambda: screen.query_one("#model-d_model").value.endswith("0"))
        assert app.focused.id == "model-d_model" and screen.query_one("#model-n_layers").value == "96"


async def test_keys_typed_right_after_a_screens_key_land_on_that_screen(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        architecture = await _on(pilot, ArchitectureScreen)
        await tab_to(pilot, "model-d_model")
        d_model = app.focused.value
        burst(app, "f3", "tab", "tab", "end", "7")  # F3 opens on its first field: steps, batch_size, grad_accum
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))
        stages = app.screen
        expected = f"{stages.project.pretrain.grad_accum}7"
        await wait_for(pilot, lambda: stages.query_one("#pretrain-grad_accum").value == expected)
        await pilot.pause()
        assert app.focused.id == "pretrain-grad_accum"  # no focus of the screen's first field after the keys
        assert architecture.query_one("#model-d_model").value == d_model and not architecture.dirty


async def test_f2_sections_jump_between_tokenizer_and_model(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await _on(pilot, ArchitectureScreen)
        await pilot.press("pagedown")
        assert app.focused.id == "model-positional_encoding"
        await pilot.press("pagedown")
        assert app.focused.id == "tokenizer-source"
        await pilot.press("pageup")
        assert app.focused.id == "model-positional_encoding"


async def test_unsaved_edits_are_marked_and_escape_asks(projects_dir):
    alpha = projects_dir / "alpha"
    before = (alpha / "project.toml").read_text()
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        nav = lambda: str(screen.query_one("#nav-architecture").render())
        assert nav() == "F2 Architecture"
        await tab_to(pilot, "model-d_model")
        await pilot.press("end", "backspace", "backspace", "backspace", *"128")
        await wait_for(pilot, lambda: nav() == "F2 Architecture •")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("escape")  # stay: the edits are still there
        await wait_for(pilot, lambda: app.screen is screen)
        assert screen.edited()[1]["d_model"] == 128
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("d")  # discard: the file is untouched, the form shows it again
        await _on(pilot, StagesScreen)
        assert (alpha / "project.toml").read_text() == before
        await _on(pilot, ArchitectureScreen, "f2")
        assert screen.edited()[1]["d_model"] == 256 and nav() == "F2 Architecture"

        await tab_to(pilot, "model-d_model")
        await pilot.press("end", "backspace", "backspace", "backspace", *"128", "ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("s")  # save, then quit
        await wait_for(pilot, lambda: not app.is_running)
    assert _toml(alpha)["model"]["d_model"] == 128


async def test_the_monitor_follows_the_stage_chosen_on_f3_after_f6(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await _on(pilot, StagesScreen, "f3")
        await pilot.press("ctrl+g", *"dpo", "enter")
        await wait_for(pilot, lambda: app.stage == "dpo")
        for key in ("f4", "f6", "f4"):
            await pilot.press(key)
        monitor = await _on(pilot, MonitorScreen)
        await wait_for(pilot, lambda: monitor.query_one("#monitor-stage").value == "dpo" and monitor.stage == "dpo")
        monitor.query_one("#monitor-stage").value = "sft"  # and back: F3 shows the monitor's choice
        stages = await _on(pilot, StagesScreen, "f3")
        await wait_for(pilot, lambda: stages.stage == "sft")


async def test_the_monitor_asks_to_save_the_forms_before_it_starts_a_run(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        stages = await _on(pilot, StagesScreen, "f3")
        await tab_to(pilot, "pretrain-steps")
        await pilot.press("end", "ctrl+u", *"7")
        await wait_for(pilot, lambda: stages.dirty)
        await pilot.press("f4")  # leaving asks: stay
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is stages)
        app.switch_mode("monitor")  # however the monitor was reached, `s` does not run the saved file silently
        monitor = await _on(pilot, MonitorScreen)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, UnsavedScreen))
        assert "F3 Stages" in str(app.screen.query_one(".dialog-question").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is monitor)
        assert app.runner.running(TRAIN_JOB) is None and _toml(alpha)["pretrain"]["steps"] != 7


@pytest.mark.parametrize("size", SIZES)
async def test_f2_uses_the_width_it_gets(projects_dir, size):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=size) as pilot:
        screen = await _on(pilot, ArchitectureScreen)
        form, summary = screen.query_one("#arch-form"), screen.query_one("#arch-summary")
        editor = screen.query_one("#model-d_model")
        widths = form.outer_size.width, summary.outer_size.width
        assert sum(widths) == size[0] and widths[1] >= 34 and editor.size.width <= 44  # no column left blank
        if size == (120, 40):  # the fields stop at a readable width, the summary takes the rest
            assert widths[0] <= 74 and widths[1] >= 46
