"""The projects screen with keys only: create (name checked by the engine), open, duplicate, delete;
and the listing: parameters from engine.project.sizing, stages done and the last run from engine.project.runs."""

from __future__ import annotations

import json

import pytest

from engine.project import load_project, new_project
from engine.project.problems import LLMLabError
from engine.project.run_lock import RunLock
from engine.project.sizing import padded_vocab_size, parameter_count, tokenizer_vocab_size
from llmlab_tui.catalog import delete_project, duplicate_project, list_projects
from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.screens.confirm import ConfirmScreen, NameScreen
from llmlab_tui.screens.projects import ProjectsScreen, cells, templates
from tests.llmlab_tui.pilot_keys import app_on, shown, wait_for


def _fake_run(project_dir, name, *events):
    run = project_dir / "runs" / name
    (run / "final").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_listing_shows_size_stages_done_and_last_run(projects_dir):
    alpha = projects_dir / "alpha"
    _fake_run(
        alpha,
        "pretrain-20260101-120000",
        {"type": "started", "total_steps": 10},
        {"type": "finished", "status": "completed"},
    )
    _fake_run(alpha, "sft-20260102-120000", {"type": "started"}, {"type": "error", "message": "boom"})
    (projects_dir / "broken").mkdir()
    (projects_dir / "broken" / "project.toml").write_text("[model]\nd_model = 'wide'\n")

    rows = {row.name: row for row in list_projects(projects_dir)}
    project = load_project(alpha)
    vocab = padded_vocab_size(tokenizer_vocab_size(project.tokenizer))
    assert rows["alpha"].parameters == parameter_count(project.model, vocab)
    assert rows["alpha"].stages_done == ("pretrain",)
    assert (rows["alpha"].last_run, rows["alpha"].last_state) == ("sft-20260102-120000", "failed")
    assert rows["broken"].problem.startswith("model.d_model: expected a whole number")
    assert cells(rows["broken"])[1] == "invalid"


async def test_create_a_project_with_keys(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NameScreen))
        await pilot.press(*"bad name!", "enter")
        with pytest.raises(LLMLabError) as refused:
            new_project("bad name!", "blank", projects_dir)
        problem = app.screen.query_one("#name-problem")
        await wait_for(pilot, lambda: str(problem.render()) == refused.value.lines[0])
        await pilot.press("ctrl+u", *"gamma", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        assert load_project(projects_dir / "gamma").name == "gamma"
        await wait_for(pilot, lambda: app.screen.highlighted and app.screen.highlighted.name == "gamma")
        await pilot.press("enter")
        await shown(pilot, ArchitectureScreen)
        assert app.screen.project.name == "gamma"


async def test_duplicate_leaves_runs_behind(projects_dir):
    _fake_run(projects_dir / "alpha", "pretrain-20260101-120000", {"type": "finished", "status": "completed"})
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, NameScreen))
        await pilot.press(*"alpha2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen) and len(app.screen.rows) == 2)
    copy = projects_dir / "alpha2"
    assert load_project(copy).name == "alpha2"
    assert not (copy / "runs").exists()
    assert (projects_dir / "alpha" / "runs").is_dir()


async def test_delete_asks_first(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        assert (projects_dir / "alpha").is_dir()
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen) and not app.screen.rows)
    assert not (projects_dir / "alpha").exists()


def test_duplicate_refuses_an_existing_name(projects_dir):
    with pytest.raises(LLMLabError, match="already exists"):
        duplicate_project(projects_dir / "alpha", "alpha")


def test_templates_are_the_engines():
    assert "blank" in templates()


def test_a_project_with_a_live_run_is_not_deleted(projects_dir):
    alpha = projects_dir / "alpha"
    _fake_run(alpha, "pretrain-20260101-120000", {"type": "started", "total_steps": 10})
    with RunLock(alpha / "runs" / "pretrain-20260101-120000"):
        with pytest.raises(LLMLabError, match="pretrain-20260101-120000 is trained right now by pid"):
            delete_project(alpha)
        assert (alpha / "project.toml").is_file()
    delete_project(alpha)
    assert not alpha.exists()


def test_a_duplicate_keeps_the_comments(projects_dir):
    alpha = projects_dir / "alpha"
    text = "# my notes\n" + (alpha / "project.toml").read_text()
    (alpha / "project.toml").write_text(text)
    copy = duplicate_project(alpha, "alpha2")
    assert (copy / "project.toml").read_text().startswith("# my notes\n")
    assert load_project(copy).name == "alpha2"


async def test_enter_on_the_template_creates_and_space_opens_the_choices(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NameScreen))
        await pilot.press(*"delta", "tab")
        template = app.screen.query_one("#template")
        assert app.focused is template
        await pilot.press("space")  # opens the choices; Enter there picks one, the dialog stays
        await wait_for(pilot, lambda: template.expanded)
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: not template.expanded)
        picked = template.value
        assert isinstance(app.screen, NameScreen) and picked != templates()[0]
        await pilot.press("enter")  # on the closed dropdown: create
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        assert (projects_dir / "delta" / "project.toml").is_file()


async def test_the_top_line_keeps_the_projects_folder_whole_at_80_columns(tmp_path):
    directory = tmp_path / "projects"
    new_project("alpha", "blank", directory)
    app = app_on(None, directory)
    async with app.run_test(size=(80, 24)) as pilot:
        nav = app.screen.query_one("NavBar")
        shown = lambda: [str(label.render()) for label in nav.query("Label")]
        await wait_for(pilot, lambda: shown()[0] == "F1 Projects" and shown()[1] == "F2")
        detail = shown()[-1]
        path = directory.as_posix()
        assert detail == path or (detail.startswith("…") and path.endswith(detail[1:]) and detail.endswith("/projects"))
    async with app_on(None, directory).run_test(size=(200, 24)) as pilot:  # room enough: every title
        nav = pilot.app.screen.query_one("NavBar")
        await wait_for(pilot, lambda: [str(label.render()) for label in nav.query("Label")][1] == "F2 Architecture")
