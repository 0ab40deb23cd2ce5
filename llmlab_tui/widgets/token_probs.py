"""Chat's probability view of one reply: its tokens coloured by the probability the model gave each,
a cursor moved over them with keys, and a line with the cursor's token and its alternatives.

Rows are the chat worker's `token_probs` (engine/chat_worker.py): {token, prob, top: [{token, prob}]},
the model's own softmax before any sampling setting. Plain functions build what is drawn, so tests
read it without Textual; the widget posts `Moved` with the new line when its cursor moves or it gets
the focus.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

# (lowest probability, style) from the likeliest band down: a background, so spaces show too
BANDS = (
    (0.5, "$text on $success-muted"),
    (0.1, "$text on $warning-muted"),
    (0.0, "$text on $error-muted"),
)


def band(prob: float) -> str:
    """The style of a token the model gave `prob`."""
    return next(style for low, style in BANDS if prob >= low)


def visible(token: str) -> str:
    """A token written so that its spaces and line ends show: ␣ for a space, ↵ for a newline."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def tokens_content(rows: list[dict], cursor: int | None) -> Content:
    """The reply as its tokens, each in its band's style, the one under `cursor` reversed; a newline
    token shows as ↵ before its line break, so it can be pointed at."""
    parts = []
    for i, row in enumerate(rows):
        text = row["token"].replace("\n", "↵\n")
        parts.append((text, band(row["prob"]) + (" reverse bold" if i == cursor else "")))
    return Content.assemble(*parts)


def top_line(rows: list[dict], cursor: int) -> Content:
    """`token 3/12 ␣cat 41.2% · ␣cat 41.2%  ␣dog 20.3% …`: the cursor's token, its probability, and
    the likeliest tokens at its place (the one generated in bold)."""
    row = rows[cursor]
    parts: list = [
        (f"token {cursor + 1}/{len(rows)} ", "$text-muted"),
        (visible(row["token"]), band(row["prob"])),
        f" {row['prob']:.1%} · ",
    ]
    for alt in row["top"]:
        chosen = alt["token"] == row["token"]
        parts += [(visible(alt["token"]), "bold" if chosen else ""), (f" {alt['prob']:.1%}  ", "$text-muted")]
    return Content.assemble(*parts)


class TokenProbs(Static, can_focus=True):
    """One reply's tokens coloured by probability; focused, ←/→ (h/l) and Home/End move the cursor."""

    BINDINGS = [
        Binding("left,h", "move(-1)", "Prev token", id="chat.token_previous"),
        Binding("right,l", "move(1)", "Next token", id="chat.token_next"),
        Binding("home", "move_to(0)", "First token", show=False, id="chat.token_first"),
        Binding("end", "move_to(-1)", "Last token", show=False, id="chat.token_last"),
    ]

    class Moved(Message):
        """The cursor of `view` moved (or `view` got the focus): `line` is what the top-k line shows now."""

        def __init__(self, view: TokenProbs, line: Content) -> None:
            super().__init__()
            self.view, self.line = view, line

    def __init__(self, rows: list[dict], **kwargs) -> None:
        super().__init__(tokens_content(rows, 0), **kwargs)
        self.rows, self.cursor = rows, 0

    def line(self) -> Content:
        return top_line(self.rows, self.cursor)

    def on_focus(self) -> None:
        self.post_message(self.Moved(self, self.line()))

    def action_move(self, step: int) -> None:
        self.action_move_to(min(max(self.cursor + step, 0), len(self.rows) - 1))

    def action_move_to(self, cursor: int) -> None:
        """Put the cursor on token `cursor` (-1: the last)."""
        cursor %= len(self.rows)
        if cursor != self.cursor:
            self.cursor = cursor
            self.update(tokens_content(self.rows, cursor))
        self.post_message(self.Moved(self, self.line()))
