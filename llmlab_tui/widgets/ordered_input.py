"""An Input that keeps every key in order, however fast the keys arrive (SSH, tmux, a paste).

Textual inserts a printable key as soon as the focused Input gets it, but runs the Input's own key
bindings (backspace, delete, the arrows, home, end, enter, …) only after the key event has bubbled
up through every parent to the app, several message hops later. When keys arrive together, the
characters typed after an editing key overtake it: "1, backspace, 3" on a field holding "2" gave
"213" (measured in tmux at 80×24 on the Architecture screen, where a burst also left fields
empty). `OrderedInput` runs those bindings when the key reaches it, in arrival order. The app's
priority bindings are still checked first (Textual does that before the key is forwarded here).
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import Input

# key → the Input action it is bound to (the same table Textual's Input declares)
EDITING_KEYS = {
    key.strip(): binding.action
    for binding in Input.BINDINGS
    if isinstance(binding, Binding)
    for key in binding.key.split(",")
}


class OrderedInput(Input):
    """Input whose editing keys take effect in the order they were typed."""

    async def _on_key(self, event: events.Key) -> None:
        action = EDITING_KEYS.get(event.key)
        if action is None:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        await self.run_action(action)
