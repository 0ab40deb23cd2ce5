"""The stage picker of the stages and monitor screens. Both follow the app's `stage`, so the
monitor shows (and `s` starts) the stage last chosen on either screen, whatever was shown between."""

from __future__ import annotations

from textual.widgets import Select

from engine.project import STAGES


class StageSelect(Select[str]):
    """A Select of the stages, kept equal to `app.stage` both ways (it posts Changed when it follows)."""

    def __init__(self, value: str, **kwargs) -> None:
        super().__init__([(s, s) for s in STAGES], value=value, allow_blank=False, compact=True, **kwargs)

    def on_mount(self) -> None:
        self.watch(self.app, "stage", self._follow)

    def _follow(self, stage: str) -> None:
        self.value = stage

    @property
    def menu_open(self) -> bool:
        """Its menu is open with the focus in it."""
        return self.expanded and self.app.focused is not None and self.app.focused.parent is self

    def on_select_changed(self, event: Select.Changed) -> None:
        self.app.stage = str(event.value)  # the screen still gets the message
