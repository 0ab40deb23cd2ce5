"""Tools and the dataset preview with keys only, each run in a worker process: the tokenizer
trains, a merge with no adapter is refused (by key and by button), a second merge onto the first
needs its --overwrite box, an evaluation shows its progress and its lm-eval table and stores the
scores beside the model, the SFT preview marks the trained reply."""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w

from engine.project import read_toml
from llmlab_tui.messages import WorkerEvents
from llmlab_tui.screens.preview import PreviewScreen, examples_content
from llmlab_tui.screens.stages import StagesScreen
from llmlab_tui.screens.tools import ToolsScreen
from tests.llmlab_tui.pilot_keys import app_on, choose, tab_to, type_into, wait_for
from tests.tiny_project import APP_RUN, make_project

SLOW = {"tries": 1200, "delay": 0.1}


def edit(project: Path, **tables) -> None:
    data = read_toml(project / "project.toml")
    for table, values in tables.items():
        data[table] = {**data.get(table, {}), **values}
    (project / "project.toml").write_text(tomli_w.dumps(data))


async def test_train_the_tokenizer_and_refuse_a_merge_without_adapters(tmp_path: Path):
    project = make_project(tmp_path / "projects" / "tiny", **APP_RUN)
    edit(project, tokenizer={"source": "bpe", "vocab_size": 300})
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        tools = app.screen
        assert "not trained yet" in str(tools.query_one("#tokenizer-line").render())
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "No adapter directory" in str(tools.query_one("#tool-output").render()))
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: "tokenizer: done" in str(app.screen.query_one("#tool-output").render()), **SLOW)
        assert "vocab_size: 300" in str(app.screen.query_one("#tool-output").render())
        assert "trained" in str(app.screen.query_one("#tokenizer-line").render())
        assert len(json.loads((project / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]) <= 300


def adapter_run(project: Path) -> Path:
    """An SFT run with LoRA adapters in final/, their base model beside the project."""
    from engine.factory import build_model, load_model
    from engine.lora import apply_lora
    from engine.project import LoraConfig, ModelConfig, Project
    from engine.tokenizer import byte_tokenizer

    tokenizer = byte_tokenizer()
    model = ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=32)
    build_model(Project(model=model), tokenizer).save_pretrained(project.parent / "base")
    final = project / "runs" / "sft-20250101-000000" / "final"
    apply_lora(load_model(project.parent / "base"), LoraConfig(enabled=True, preset="all")).save_pretrained(final)
    tokenizer.save_pretrained(final)
    return final


async def test_merging_again_needs_the_overwrite_box(tmp_path: Path):
    project = make_project(tmp_path / "projects" / "tiny", **APP_RUN)
    final = adapter_run(project)
    merged = final.with_name("final-merged")
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        output = lambda: str(app.screen.query_one("#tool-output").render())
        idle = lambda: not app.runner.running("tool")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "merge: done" in output() and idle(), **SLOW)
        assert f"out_dir: {merged}" in output() and (merged / ".llmlab-output.json").is_file()
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "--overwrite replaces it" in output() and idle(), **SLOW)
        assert f"--out: {merged} holds an earlier output of llmlab merge" in output()
        await tab_to(pilot, "merge-overwrite")
        await pilot.press("space")
        assert app.screen.query_one("#merge-overwrite").value
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: "merge: done" in output(), **SLOW)


async def test_an_overwrite_box_is_empty_until_ticked(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        box = app.screen.query_one("#merge-overwrite")
        style = box.get_component_rich_style("toggle--button")
        assert not box.value and style.color == style.bgcolor  # the X drawn in the box's colour: not seen
        await tab_to(pilot, "merge-overwrite")
        await pilot.press("space")
        await wait_for(pilot, lambda: box.value)
        style = box.get_component_rich_style("toggle--button")
        assert style.color != style.bgcolor


async def test_the_buttons_run_the_actions_of_their_keys(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        output = lambda: str(app.screen.query_one("#tool-output").render())
        await tab_to(pilot, "merge")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "No adapter directory" in output())
        await tab_to(pilot, "export")
        await pilot.press("enter")
        await wait_for(pilot, lambda: "No model directory" in output())


async def test_the_sft_preview_shows_the_format_and_marks_the_reply(tmp_path: Path):
    project = make_project(tmp_path / "projects" / "tiny", **APP_RUN)
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}]
    (project / "chat.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    edit(project, sft={"datasets": [{"path": "chat.jsonl"}], "seq_len": 64})
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen) and app.screen.project)
        await choose(pilot, "stage-select", "sft", key="shift+tab")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, PreviewScreen))
        text = lambda: str(app.screen.query_one("#preview-text").render())
        await wait_for(pilot, lambda: "format:" in text() or "Error" in text(), **SLOW)
        assert "── chat.jsonl (format: " in text() and "hello there" in text()
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))


def test_trained_spans_are_marked():
    example = {
        "source": "a.jsonl",
        "format": "messages",
        "label": "",
        "truncated": True,
        "note": "",
        "spans": [["user: hi\n", False], ["hello", True]],
    }
    content = examples_content([example])
    assert content.plain == "── a.jsonl (format: messages, truncated at seq_len)\nuser: hi\nhello\n\n"
    start = content.plain.index("hello")
    assert [(s.start, s.end) for s in content.spans if "underline" in str(s.style)] == [(start, start + 5)]


async def test_a_tool_result_shows_without_a_toast_over_it_and_a_toast_when_elsewhere(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        tools = app.screen
        done = {"type": "finished", "status": "completed", "tool": "export", "report": {"out_dir": "/x/llama"}}
        tools.post_message(WorkerEvents("tool", [done]))
        await wait_for(pilot, lambda: "export: done" in str(tools.query_one("#tool-output").render()))
        assert not app._notifications  # nothing covers the result at the bottom of the screen
        await pilot.press("f2")
        await wait_for(pilot, lambda: not tools.is_current)
        failed = {"type": "error", "message": "export: out_dir: not empty", "traceback": "", "problem": True}
        tools.post_message(WorkerEvents("tool", [failed]))
        await wait_for(pilot, lambda: app._notifications)
        assert [n.message for n in app._notifications] == ["export: out_dir: not empty (F6)"]


def final_model(project: Path) -> Path:
    """A pretraining run's final/ holding a tiny model with the byte tokenizer."""
    from engine.factory import build_model
    from engine.project import ModelConfig, Project
    from engine.tokenizer import byte_tokenizer

    tokenizer = byte_tokenizer()
    model = ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=64)
    final = project / "runs" / "pretrain-20250101-000000" / "final"
    build_model(Project(model=model), tokenizer).save_pretrained(final)
    tokenizer.save_pretrained(final)
    return final


async def test_an_evaluation_shows_progress_and_its_table_and_stores_the_scores(tmp_path: Path, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")  # the worker inherits them; demo_facts is local anyway
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    project = make_project(tmp_path / "projects" / "tiny", **APP_RUN)
    final = final_model(project)
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.project)
        tools = app.screen
        output = lambda: str(tools.query_one("#tool-output").render())
        assert tools.query_one("#eval-model").value == str(final)
        await type_into(pilot, "eval-limit", "many")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "--limit: a whole number of documents per task" in output())
        await type_into(pilot, "eval-limit", "6")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "eval: done" in output(), **SLOW)
        lines = output().splitlines()
        cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[1:-1]]
        assert cells[0] == ["task", "version", "shots", "samples", "metric", "value", "stderr"]
        assert cells[2][:5] == ["demo_facts", "1.0", "0", "6", "acc"]
        assert lines[-1] == f"stored in {final / 'eval' / 'results.json'}"
        stored = json.loads((final / "eval" / "results.json").read_text())["tasks"]["demo_facts"]
        assert stored["samples"] == 6 and cells[2][5] == f"{stored['metrics']['acc']:.4f}"
        progress = {"type": "phase", "name": "requests", "message": "scoring choices", "done": 30, "total": 120}
        progress |= {"unit": "requests"}
        tools.post_message(WorkerEvents("tool", [progress]))
        await wait_for(pilot, lambda: output() == "eval: scoring choices: 30/120 requests (25%)")
