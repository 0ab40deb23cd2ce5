"""`?` on every screen: a dialog listing that screen's keys with what they do, and the app's;
Escape closes it. The palette lists the run and reply controls and opens the same dialog."""

from __future__ import annotations

from textual.binding import Binding

from llmlab_tui.app import SCREENS, LabApp
from llmlab_tui.commands import ACTIONS
from llmlab_tui.screens.keys import KeysScreen
from tests.llmlab_tui.pilot_keys import app_on, run_palette, wait_for


def descriptions(bindings) -> list[str]:
    return [b.description for b in Binding.make_bindings(bindings) if b.description]


async def test_question_mark_lists_the_keys_of_each_screen(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        for name, entry in SCREENS.items():
            await pilot.press(entry.key)
            await wait_for(pilot, lambda name=name: app.current_mode == name and not isinstance(app.screen, KeysScreen))
            screen = app.screen
            screen.set_focus(None)  # in a text field `?` is typed; anywhere else it opens the dialog
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, KeysScreen))
            text = str(app.screen.query_one("#keys-text").render())
            mine, everywhere = text.split("everywhere\n")
            assert mine.startswith("this screen\n")
            for description in descriptions(type(screen).BINDINGS):
                assert description in mine, (name, description)
            for description in descriptions(LabApp.BINDINGS):
                assert description in everywhere, (name, description)
            assert "?" in everywhere and "Keys" in everywhere
            await pilot.press("escape")
            await wait_for(pilot, lambda screen=screen: app.screen is screen)


async def test_the_palette_holds_run_and_reply_controls_and_the_keys(projects_dir):
    titles = [title for title, *_ in ACTIONS]
    for title in ("Start run", "Stop run (checkpoint)", "Save checkpoint now", "Resume run", "Stop reply"):
        assert title in titles
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "architecture")
        await run_palette(pilot, "Keys of this screen")
        await wait_for(pilot, lambda: isinstance(app.screen, KeysScreen))
        assert "Save" in str(app.screen.query_one("#keys-text").render())  # F2's Ctrl+S
        assert app.screen.title_text == "Architecture"
