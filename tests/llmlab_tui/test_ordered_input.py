"""Keys that arrive together (a burst over SSH, a fast typist) land in order on every text field:
editing keys (backspace, end, …) are not overtaken by the characters typed after them."""

from __future__ import annotations

from textual import events

from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.widgets.ordered_input import OrderedInput
from tests.llmlab_tui.pilot_keys import app_on, shown, wait_for


def burst(widget, *keys: str) -> None:
    """Post every key to the focused field at once, as a terminal delivers a burst (no waiting)."""
    for key in keys:
        widget.post_message(events.Key(key, key if len(key) == 1 else None))


async def test_a_burst_of_editing_and_typed_keys_lands_in_order(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await shown(pilot, ArchitectureScreen)
        kv_heads = app.screen.query_one("#model-n_kv_heads", OrderedInput)
        kv_heads.focus()
        burst(kv_heads, "end", "1", "backspace", "3")
        await wait_for(pilot, lambda: kv_heads.value == "23")
        d_model = app.screen.query_one("#model-d_model", OrderedInput)
        d_model.focus()
        burst(d_model, "end", "backspace", "backspace", "backspace", "6", "4")  # a problem shows midway
        await wait_for(pilot, lambda: d_model.value == "64")
        burst(d_model, "home", "delete", "1", "end", "backspace", "8")  # the cursor moves in order too
        await wait_for(pilot, lambda: d_model.value == "18")
