"""The app shell: screens by key, Escape back, a project needed before its screens, the palette."""

from __future__ import annotations

from engine.project import new_project
from llmlab_tui.app import SCREENS, LabApp, run_app
from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.screens.projects import ProjectsScreen
from llmlab_tui.screens.stages import StagesScreen
from tests.llmlab_tui.pilot_keys import app_on, run_palette, shown, wait_for


async def test_starts_on_projects_and_refuses_project_screens_without_one(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        assert isinstance(app.screen, ProjectsScreen)
        await pilot.press("f2")
        await wait_for(pilot, lambda: app._notifications)
        assert isinstance(app.screen, ProjectsScreen)
        assert "Open a project first" in next(iter(app._notifications)).message


async def test_function_keys_switch_screens_and_escape_goes_back(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot, ArchitectureScreen)
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, ProjectsScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen))
        await pilot.press("escape")
        await shown(pilot, ArchitectureScreen)


async def test_every_screen_has_a_key_binding_with_an_id(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)):
        keys = {b.id: b.key for b in LabApp.BINDINGS}
        for name, entry in SCREENS.items():
            assert keys[f"screen.{name}"] == entry.key


async def test_palette_opens_a_project(projects_dir):
    new_project("beta", "blank", projects_dir)
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_palette(pilot, "open project beta")
        await shown(pilot, ArchitectureScreen)
        assert app.project_path == (projects_dir / "beta").resolve()
        assert app.screen.project.name == "beta"


async def test_q_quits_outside_inputs(projects_dir):
    app = app_on(None, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


def test_run_app_accepts_project_toml(monkeypatch, projects_dir):
    seen = {}
    monkeypatch.setattr(LabApp, "run", lambda self: seen.setdefault("path", self.project_path))
    assert run_app(projects_dir / "alpha" / "project.toml") == 0
    assert seen["path"] == (projects_dir / "alpha").resolve()
