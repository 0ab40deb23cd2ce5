"""The compare screen at 80×24 over hand-written run folders: tick two runs, the chart holds a
series for each, the table shows bits per byte and the one setting that differs; `x` plots the
same runs against tokens seen, `m` moves to the next measure. A final model's lm-eval scores are
rows of the table (read again once stored), never measures of the chart. `o` adds the other
projects' runs; `w` ticks a sweep's runs."""

from __future__ import annotations

import os
import time

from engine.project import load_project
from engine.project.sweeps import Sweep, combinations, parse_grid
from llmlab_tui.screens.compare import CompareScreen
from tests.llmlab_tui.pilot_keys import app_on, show, wait_for
from tests.run_folders import write_run, write_scores
from tests.tiny_project import make_project


def table_rows(screen: CompareScreen) -> dict[str, list[str]]:
    """The table's rows by their first cell (a measure or a setting)."""
    table = screen.query_one("#compare-table")
    return {table.get_row_at(i)[0]: table.get_row_at(i)[1:] for i in range(table.row_count)}


async def test_two_runs_on_one_chart_with_their_differences(tmp_path):
    project = make_project(tmp_path / "projects" / "tiny")
    write_run(project / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.5, 2.0], 1.1)
    write_run(project / "runs/pretrain-20260101-120001", 1e-3, "alibi", [3.1, 2.7, 2.4], 1.3)
    write_run(project / "runs/pretrain-20260101-120002", 3e-3, "rope", [3.2, 2.9], 1.5)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f7", CompareScreen)
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: len(screen.lines) == 2)
        assert [label for label, _, _ in screen.lines] == ["[1]", "[2]"]
        assert screen.lines[1][1:] == ([1, 2, 3], [3.1, 2.7, 2.4])
        rows = table_rows(screen)
        assert rows["bpb"] == ["1.1", "1.3"]
        assert rows["model.positional_encoding"] == ["rope", "alibi"]
        assert "pretrain.lr" not in rows  # the same in both
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.lines[1][1] == [128, 256, 384])
        await pilot.press("m")
        await wait_for(pilot, lambda: screen.query_one("#measure").value == "eval_loss")


async def test_a_ticked_run_looks_ticked_and_an_unticked_one_empty(tmp_path):
    project = make_project(tmp_path / "projects" / "tiny")
    write_run(project / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.5], 1.1)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = (await show(pilot, "f7", CompareScreen)).query_one("#compare-runs")
        for name in ("selection-list--button", "selection-list--button-highlighted"):
            style = runs.get_component_rich_style(name)
            assert style.color == style.bgcolor, name  # the X drawn in the box's own colour: not seen
        for name in ("selection-list--button-selected", "selection-list--button-selected-highlighted"):
            style = runs.get_component_rich_style(name)
            assert style.color != style.bgcolor, name


async def test_lm_eval_scores_of_a_final_model_are_rows_of_the_table(tmp_path):
    project = make_project(tmp_path / "projects" / "tiny")
    first = write_run(project / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.5], 1.1)
    write_run(project / "runs/pretrain-20260101-120001", 1e-3, "alibi", [3.1, 2.7], 1.3)
    write_scores(first, demo_facts=0.625)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f7", CompareScreen)
        await pilot.press("space", "down", "space")
        await wait_for(pilot, lambda: len(screen.lines) == 2)
        assert table_rows(screen)["demo_facts acc"] == ["0.625", "—"]
        assert "demo_facts acc" not in screen.choices["measure"]
        write_scores(first, hellaswag=0.25)  # evaluated again while Compare is open
        await pilot.press("space", "space")
        await wait_for(pilot, lambda: "hellaswag acc" in table_rows(screen))
        assert table_rows(screen)["hellaswag acc"] == ["0.25", "—"]


async def test_o_lists_the_other_projects_runs_beside_the_open_ones_and_keeps_the_ticks(tmp_path):
    project = make_project(tmp_path / "projects" / "tiny")
    other = make_project(tmp_path / "projects" / "other")
    write_run(project / "runs/pretrain-20260101-120000", 1e-3, "rope", [3.0, 2.5], 1.1)
    write_run(other / "runs/pretrain-20260101-130000", 1e-3, "alibi", [3.1, 2.2], 0.9)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f7", CompareScreen)
        listing = screen.query_one("#compare-runs")
        await pilot.press("space")
        await wait_for(pilot, lambda: len(screen.lines) == 1)
        await pilot.press("o")
        await wait_for(pilot, lambda: listing.option_count == 2)
        assert str(listing.get_option_at_index(1).prompt) == "2 other/pretrain-130000 completed"
        assert listing.selected == [0]  # the open project's tick kept
        await pilot.press("down", "space")
        await wait_for(pilot, lambda: len(screen.lines) == 2)
        rows = table_rows(screen)
        assert rows["bpb"] == ["1.1", "0.9"] and rows["model.positional_encoding"] == ["rope", "alibi"]
        await pilot.press("o")
        await wait_for(pilot, lambda: listing.option_count == 1 and len(screen.lines) == 1)


async def test_w_ticks_the_runs_of_the_newest_sweep_then_of_the_one_before(tmp_path):
    root = make_project(tmp_path / "projects" / "tiny")
    runs = [
        write_run(root / f"runs/pretrain-20260101-12000{i}", 1e-3, encoding, [3.0, 2.5], 1.1)
        for i, encoding in enumerate(("rope", "alibi", "rope", "yarn"))
    ]
    project = load_project(root)
    older = Sweep(project, "pretrain", parse_grid(["model.positional_encoding=rope,alibi"]))
    newer = Sweep(project, "pretrain", parse_grid(["model.positional_encoding=rope,yarn"]))
    for sweep, members in ((older, runs[:2]), (newer, runs[2:])):
        sweep.record()
        for overrides, run in zip(combinations(sweep.grid), members):
            sweep.tag(run, overrides)
        os.utime(sweep.folder / "sweep.json", (time.time() + (sweep is newer), time.time() + (sweep is newer)))
    app = app_on(root, root.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f7", CompareScreen)
        listing = screen.query_one("#compare-runs")
        await pilot.press("space", "w")  # the newest sweep's runs, the run ticked by hand no longer
        await wait_for(pilot, lambda: sorted(listing.selected) == [2, 3] and len(screen.lines) == 2)
        assert table_rows(screen)["model.positional_encoding"] == ["rope", "yarn"]
        await pilot.press("w")
        await wait_for(pilot, lambda: sorted(listing.selected) == [0, 1])
        await pilot.press("w")  # and round again
        await wait_for(pilot, lambda: sorted(listing.selected) == [2, 3])
