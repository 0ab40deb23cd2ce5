"""The dataset preview dialog (Ctrl+O on F3): a stage the preview cannot show says so in words,
without a traceback; a crash keeps its traceback."""

from __future__ import annotations

from llmlab_tui.messages import error_content
from llmlab_tui.screens.preview import PreviewScreen
from llmlab_tui.screens.stages import StagesScreen
from tests.llmlab_tui.pilot_keys import app_on, wait_for

SLOW = {"tries": 1200, "delay": 0.1}  # the worker process imports the engine first


async def test_ctrl_o_on_pretrain_says_why_there_is_nothing_to_show(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen) and app.screen.project)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        text = app.screen.query_one("#preview-text")
        await wait_for(pilot, lambda: "building" not in str(text.render()), **SLOW)
        shown = " ".join(str(text.render()).split())
        assert shown == "preview: the pretrain stage has no examples to show (stages: sft, dpo, ppo, grpo)"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))


def test_a_crash_keeps_its_traceback_and_a_refusal_drops_it():
    crash = {"type": "error", "message": "KeyError: 'x'", "traceback": "Traceback (most recent call last): ..."}
    refusal = {**crash, "message": "sft.seq_len: must be >= 8", "problem": True}
    assert str(error_content(crash)) == "KeyError: 'x'\nTraceback (most recent call last): ..."
    assert str(error_content(refusal)) == "sft.seq_len: must be >= 8"
