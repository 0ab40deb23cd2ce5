"""Switching the stage on F3: while the new stage's form is being built, the last stage's form is
not shown under the new name; the burst of changes a new form's fields send costs few checks."""

from __future__ import annotations

from textual.widgets import ContentSwitcher

from llmlab_tui.screens.stages import StagesScreen
from llmlab_tui.widgets.stage_form import StageForm
from tests.llmlab_tui.pilot_keys import app_on, choose, wait_for


async def test_the_last_stages_values_are_hidden_while_the_next_form_mounts(projects_dir, monkeypatch):
    seen = []  # (stage being built, forms shown at that moment)
    compose = StageForm.compose

    def watching(form: StageForm):
        switcher = form.screen.query_one(ContentSwitcher)
        seen.append((form.stage, [f.stage for f in switcher.query(StageForm) if f is not form and f.display]))
        yield from compose(form)

    checks = []
    check = StagesScreen.check
    monkeypatch.setattr(StageForm, "compose", watching)
    monkeypatch.setattr(StagesScreen, "check", lambda screen: checks.append(1) or check(screen))
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, StagesScreen) and app.screen.project)
        screen, checks[:] = app.screen, []
        await choose(pilot, "stage-select", "sft", key="shift+tab")
        await wait_for(pilot, lambda: screen.query_one(ContentSwitcher).current == "form-sft")
        assert seen[-1] == ("sft", [])  # pretrain's form was hidden while sft's was built
        assert screen.query_one("#sft-steps").value == str(screen.project.sft.steps)
        assert len(checks) <= 3  # not one per field of the new form
