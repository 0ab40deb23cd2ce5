"""End to end with real worker processes, keys only: train a tiny model from the monitor, see the
charts fill (the per-layer ones too) and the run finish, chat with the result (streamed, then its
tokens coloured by probability), export it to Llama format."""

from __future__ import annotations

import json
from pathlib import Path

from llmlab_tui.run_view import CHARTS
from llmlab_tui.screens.chat import ChatScreen
from llmlab_tui.screens.monitor import MonitorScreen
from llmlab_tui.screens.tools import ToolsScreen
from tests.llmlab_tui.pilot_keys import app_on, show, wait_for
from tests.tiny_project import APP_RUN, make_project

SLOW = {"tries": 1200, "delay": 0.1}  # a worker process imports torch first: seconds on a busy machine


async def test_train_then_chat_then_export(tmp_path: Path):
    project = make_project(tmp_path / "projects" / "tiny", **APP_RUN, layer_stats=True)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await show(pilot, "f4", MonitorScreen)
        await pilot.press("s")
        await wait_for(pilot, lambda: monitor.view.state != "running", **SLOW)
        assert monitor.view.state == "completed", monitor.view.error
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version)
        assert monitor.view.series[("metrics", "loss")].x == [1, 2, 3, 4, 5, 6]
        assert monitor.view.series[("eval", "loss")].x == [3, 6]
        assert monitor.query_one("#chart-0").display and monitor.view.samples
        per_layer = [i for i, chart in enumerate(CHARTS) if chart.per_layer]
        assert per_layer and all(monitor.query_one(f"#chart-{i}").display for i in per_layer)
        blocks = [[label for label, _, _ in monitor.view.chart_lines(CHARTS[i])] for i in per_layer]
        assert blocks == [["0", "1"]] * len(per_layer)  # the tiny model's 2 blocks, in each chart
        assert monitor.view.report["steps"] == 6 and monitor.redraws >= 2
        final = Path(monitor.view.run_dir) / "final"

        chat = await show(pilot, "f5", ChatScreen)
        assert chat.query_one("#chat-model").value == str(final)
        assert chat.query_one("#chat-mode").value == "completion"  # a base model: no chat template
        await pilot.press(*"the cat", "enter")
        await wait_for(pilot, lambda: len(chat.history) == 2 or chat.query(".chat-error"), **SLOW)
        reply = chat.history[-1]["content"]
        assert chat.history[0] == {"role": "user", "content": "the cat"} and reply
        await wait_for(pilot, lambda: chat.query_one(".chat-reply").source == reply)  # streamed into the widget
        await pilot.press("ctrl+r")  # regenerate: the reply is replaced, the conversation keeps 2 turns
        await wait_for(pilot, lambda: chat.stream is None and len(chat.history) == 2, **SLOW)
        assert len(chat.query(".chat-reply")) == 1
        await pilot.press("ctrl+t")  # the reply as its tokens, coloured by the model's probabilities
        await wait_for(pilot, lambda: chat.query(".chat-probs") and chat.query_one(".chat-probs").display)
        view = chat.query_one(".chat-probs")
        assert app.focused is view and view.rows and all(0 < row["prob"] <= 1 for row in view.rows)
        assert str(chat.query_one("#chat-top").render()).startswith(f"token 1/{len(view.rows)} ")

        tools = await show(pilot, "f6", ToolsScreen)
        assert tools.query_one("#export-model").value == str(final)
        await pilot.press("ctrl+o")
        out = project / "export" / f"{final.parent.name}-final-llama"
        await wait_for(pilot, lambda: "export: done" in str(tools.query_one("#tool-output").render()), **SLOW)
        assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
