"""The model pickers of F5 and F6: real models alone (no "no model yet" entry beside them), and
with none the prompt shown, disabled, never picked as a model; models made later join the list."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Select

from llmlab_tui.screens.chat import ChatScreen
from llmlab_tui.screens.tools import ToolsScreen
from llmlab_tui.widgets.pickers import ModelPicker
from tests.llmlab_tui.pilot_keys import app_on, show, wait_for


def make_model(project: Path, run: str, name: str = "final") -> Path:
    path = project / "runs" / run / name
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def offered(picker: ModelPicker) -> list:
    """The values the picker's dropdown lists (Select.NULL for a blank entry)."""
    return [value for _, value in picker._options]


async def test_with_models_the_lists_hold_them_alone(projects_dir: Path):
    project = projects_dir / "alpha"
    older, newer = make_model(project, "pretrain-20260101-120000"), make_model(project, "sft-20260102-120000")
    app = app_on(project, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        picker = chat.query_one("#chat-model", ModelPicker)
        assert offered(picker) == [str(newer), str(older)] and picker.value == str(newer)
        assert not picker.disabled
        tools = await show(pilot, "f6", ToolsScreen)
        export = tools.query_one("#export-model", ModelPicker)
        assert offered(export) == [str(newer), str(older)] and export.value == str(newer)
        adapters = tools.query_one("#merge-adapter", ModelPicker)
        assert offered(adapters) == [Select.NULL] and adapters.disabled  # no adapter run: the prompt alone
        adapter = make_model(project, "sft-20260103-120000", "final")
        (adapter / "config.json").rename(adapter / "adapter_config.json")
        await show(pilot, "f5", ChatScreen)
        await show(pilot, "f6", ToolsScreen)  # back on F6: the new adapters join; evaluation takes any model
        evaluate = tools.query_one("#eval-model", ModelPicker)
        await wait_for(pilot, lambda: offered(evaluate) == [str(adapter), str(newer), str(older)])
        assert offered(export) == [str(newer), str(older)] and offered(adapters) == [str(adapter)]


async def test_without_models_the_prompt_cannot_be_picked_and_new_models_join(projects_dir: Path):
    project = projects_dir / "alpha"
    app = app_on(project, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        picker = chat.query_one("#chat-model", ModelPicker)
        assert picker.disabled and picker.value == Select.NULL and not picker.focusable
        assert str(picker.query_one("SelectCurrent #label").render()) == "no model yet: run a stage first"
        await pilot.press("f2")
        final = make_model(project, "pretrain-20260101-120000")
        await show(pilot, "f5", ChatScreen)  # back on F5: the new checkpoint is offered
        await wait_for(pilot, lambda: not picker.disabled)
        assert offered(picker) == [str(final)] and picker.value == str(final)
