"""The inspect screen's four views drawn from the plain-data reports of `llmlab inspect`
(engine.inspection.views, run in a worker): Content for a Static, coloured from the theme.

- attention: one layer × head as half blocks (▀: the upper half is a query, the lower half the
  next one; a column per key), beside the summary of every head with the shown one marked
- lens: each position's top next token at each layer, its cell tinted by its probability
- tokens: the text with each token tinted by its surprise, then the CLI's table (render.py)
- ablation: the CLI's damage table (render.py), worst first

Plain functions, no Textual widgets, no torch: engine.inspection.render imports json only.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.color import Color, Gradient
from textual.content import Content
from textual.style import Style

from engine.inspection.render import ablate_text, shown, tokens_text

HALF = "▀"
LABEL = 11  # "pos tok tok" before a heatmap row
TABLE_GAP = 2
CELL = 6  # characters of a token in the lens grid


@dataclass(frozen=True)
class Heat:
    """A colour scale from the theme: 0 is the background, 1 the accent (through the primary)."""

    background: Color
    gradient: Gradient

    @classmethod
    def from_theme(cls, variables: dict[str, str]) -> Heat:
        low, mid, high = (Color.parse(variables[name]) for name in ("background", "primary", "accent"))
        return cls(low, Gradient((0.0, low), (0.5, mid), (1.0, high)))

    def __call__(self, x: float) -> Color:
        return self.gradient.get_color(min(max(x, 0.0), 1.0))

    def cell(self, x: float) -> Style:
        """A tinted cell whose text stays readable on it."""
        colour = self(x)
        return Style(background=colour, foreground=colour.get_contrast_text())


def lines(*rows: Content) -> Content:
    return Content("\n").join(rows)


# -- attention ---------------------------------------------------------------------------------------


def head_count(report: dict) -> tuple[int, int]:
    """(layers, heads) of an attention report made with every_head."""
    return len(report["all_weights"]), len(report["all_weights"][0])


def head_title(report: dict, layer: int, head: int) -> str:
    kv = report["heads"][layer * head_count(report)[1] + head]["kv_head"]
    return f"layer {layer} head {head} (kv group {kv})"


def brief(token: str, width: int) -> str:
    """A token in `width` cells for the heatmap's axes: a word's leading space dropped (BPE tokens
    mostly start with one, and the word is what tells them apart); one cell holds its first letter."""
    text = shown(token, 40)
    text = text[1:] if text.startswith("␣") and len(text) > 1 else text
    if len(text) <= width:
        return text
    return text[:1] if width == 1 else text[: width - 1] + "…"


def heatmap(tokens: list[str], weights: list[list[float]], heat: Heat) -> list[Content]:
    """A text row per two queries, a column per key (its first letter above it); each query's row
    scaled to its largest weight (as the CLI's shades); keys a query cannot see (later ones) stay blank."""

    def colour(q: int, k: int) -> Color:
        if q >= len(weights) or k > q:
            return heat.background
        return heat(weights[q][k] / (max(weights[q][: q + 1]) or 1.0))

    axis = Content.assemble(" " * LABEL + "│", *(brief(token, 1) for token in tokens))
    rows = [axis]
    for top in range(0, len(tokens), 2):
        below = brief(tokens[top + 1], 3) if top + 1 < len(tokens) else ""
        label = f"{top:>3} {brief(tokens[top], 3):<3} {below:<3}│"
        cells = [(HALF, Style(foreground=colour(top, k), background=colour(top + 1, k))) for k in range(len(tokens))]
        rows.append(Content.assemble(label, *cells))
    return rows


def summary_table(report: dict, layer: int, head: int) -> list[Content]:
    """Every head: its kv group, entropy (bits), share on the previous and on the first token,
    induction score; the shown head reversed."""
    rows = [Content.assemble((f"{'head':<6}{'kv':>2} {'ent':>5} {'prev':>4} {'first':>5} {'ind':>4}", "bold"))]
    for h in report["heads"]:
        text = (
            f"L{h['layer']}.H{h['head']:<3}{h['kv_head']:>2} {h['entropy']:5.2f} {h['previous']:4.2f} "
            f"{h['first']:5.2f} {h['induction']:4.2f}"
        )
        rows.append(Content.assemble((text, "reverse bold" if (h["layer"], h["head"]) == (layer, head) else "")))
    return rows


def attention_content(report: dict, layer: int, head: int, heat: Heat, width: int) -> Content:
    """The heatmap of `layer`, `head` with the summary table beside it (below it when `width` is too narrow)."""
    left = heatmap(report["tokens"], report["all_weights"][layer][head], heat)
    right = summary_table(report, layer, head)
    legend = Content("a row per two queries (▀: upper, lower), each scaled to its largest weight")
    map_width = LABEL + 1 + len(report["tokens"])
    if map_width + TABLE_GAP + right[0].cell_length > width:
        return lines(*left, legend, Content(""), *right)
    rows = []
    for i in range(max(len(left), len(right))):
        part = left[i] if i < len(left) else Content("")
        pad = " " * (map_width + TABLE_GAP - part.cell_length)
        rows.append(Content.assemble(part, pad, right[i] if i < len(right) else ""))
    return lines(*rows, legend)


# -- lens, tokens, ablation --------------------------------------------------------------------------


def lens_content(report: dict, heat: Heat) -> Content:
    """A row per position: its token, each layer's top next token and probability on a cell tinted by
    that probability (underlined: it is the true next token), then the true next token."""
    tokens, layers = report["tokens"], report["layers"]
    header = f"{'pos':>4} {'token':<8} " + "".join(f"{'L' + str(n):<{CELL + 6}}" for n in range(len(layers)))
    rows = [Content.assemble((header + "next", "bold"))]
    for t, token in enumerate(tokens):
        following = tokens[t + 1] if t + 1 < len(tokens) else None
        cells = []
        for layer in layers:
            top, prob = layer["top"][t], layer["prob"][t]
            style = heat.cell(prob) + Style(underline=top == following)
            cells += [(f"{shown(top, CELL):<{CELL}} {prob:4.2f}", style), " "]
        rows.append(Content.assemble(f"{t:>4} {shown(token):<8} ", *cells, shown(following or "")))
    rows.append(Content("each layer's guess and probability; underlined: the true next token"))
    return lines(*rows)


def tokens_content(report: dict, heat: Heat) -> Content:
    """The text with each token tinted by its bits (the most surprising one full), then the table."""
    rows = report["tokens"]
    most = max(row["bits"] for row in rows) or 1.0
    text = Content.assemble(*((shown(row["token"], 40), heat.cell(row["bits"] / most)) for row in rows))
    scale = f"tint: bits of surprise, 0 … {most:.1f} (the most surprising token)"
    return lines(text, Content(scale), Content(""), Content(tokens_text(report)))


def ablation_content(report: dict) -> Content:
    return Content(ablate_text(report))
