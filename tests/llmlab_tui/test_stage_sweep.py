"""A sweep started from the stages screen (Ctrl+B) at 80×24: a bad grid is refused in the dialog by
field and rule, nothing trains; a good one runs `llmlab sweep` in a process of its own, whose two
members finish as tagged runs with their own lr."""

from __future__ import annotations

from engine.project import load_project
from engine.project.compare import run_config
from engine.project.runs import list_runs, run_state
from engine.project.sweeps import read_tag
from llmlab_tui.screens.confirm import NameScreen
from llmlab_tui.screens.stages import StagesScreen
from tests.llmlab_tui.pilot_keys import app_on, wait_for
from tests.tiny_project import make_project

SLOW = {"tries": 1500, "delay": 0.1}


def finished_runs(project) -> list:
    runs = list_runs(load_project(project))
    return [run for run in runs if run_state(run)["state"] == "completed" and read_tag(run)]


async def test_ctrl_b_refuses_a_bad_grid_then_starts_a_sweep(tmp_path):
    project = make_project(tmp_path / "projects" / "tiny", steps=3, eval_every=3)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen) and app.screen.project)
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, NameScreen))
        await pilot.press(*"pretrain.lr=fast", "enter")
        problem = app.screen.query_one("#name-problem")
        await wait_for(pilot, lambda: "pretrain.lr" in str(problem.render()))
        assert list_runs(load_project(project)) == []
        await pilot.press(*["backspace"] * 4, *"1e-3,3e-3", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))
        await wait_for(pilot, lambda: len(finished_runs(project)) == 2, **SLOW)
    assert sorted(run_config(run)["pretrain.lr"] for run in finished_runs(project)) == [1e-3, 3e-3]
