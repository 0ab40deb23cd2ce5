"""Model pickers (chat, tools): a Select of model directories that keeps its choice when new ones appear."""

from __future__ import annotations

from textual.widgets import Select


def model_picker(options: list[tuple[str, str]], prompt: str, id: str) -> Select:
    """A Select showing the first (newest) model directory, or `prompt` when there is none."""
    return Select(options, prompt=prompt, compact=True, id=id, value=options[0][1] if options else Select.NULL)


def update_options(select: Select, options: list[tuple[str, str]]) -> None:
    """New options; the picked value stays if it is still offered, else the first one is picked."""
    keep = select.value
    select.set_options(options)
    values = [value for _, value in options]
    select.value = keep if keep in values else values[0] if values else Select.NULL
