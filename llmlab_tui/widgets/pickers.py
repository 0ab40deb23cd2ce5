"""Model pickers (chat, tools): a Select of model directories that keeps its choice when new ones appear.

With models it offers them alone (no blank entry beside them); with none it shows its prompt
(say "no model yet: run a stage first"), disabled, so the prompt can never be picked as a model.
"""

from __future__ import annotations

from textual.widgets import Select


class ModelPicker(Select):
    """The model directories as (title, path) options, the first (newest) one picked."""

    def __init__(self, options: list[tuple[str, str]], prompt: str, id: str) -> None:
        super().__init__(
            options,
            prompt=prompt,
            compact=True,
            id=id,
            allow_blank=not options,
            value=options[0][1] if options else Select.NULL,
            disabled=not options,
        )

    def set_models(self, options: list[tuple[str, str]]) -> None:
        """New options; the picked value stays if it is still offered, else the first one is picked."""
        keep = self.value
        self._allow_blank = not options  # Select reads it when the options are set; it has no setter
        self.disabled = not options
        self.set_options(options)
        values = [value for _, value in options]
        self.value = keep if keep in values else values[0] if values else Select.NULL
