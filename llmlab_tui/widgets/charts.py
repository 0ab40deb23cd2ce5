"""The monitor's charts: a panel per chart (its legend above the plot, off the data) and the pure
functions that size and label them, which tests check without Textual.

- `chart_grid` splits the space the charts get into columns and rows: charts grow with the
  terminal, and below MIN_ROWS a row the grid scrolls instead of squeezing the axes away.
- `nice_ticks` puts y labels at 1, 2, 2.5 or 5 × 10^k steps with one format, so they line up;
  `step_ticks` puts x labels on whole steps only; `thinned` keeps a long run's lines to what the
  plot's columns can show.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label
from textual_plotext import PlotextPlot

MIN_ROWS = 9  # a chart's rows: legend, frame, 5 rows of data and ticks, the x labels
ROWS_PER_Y_TICK = 3
COLORS = (  # one per line of a chart: a per-layer chart draws up to run_view.LAYER_LINES
    (0, 175, 255),
    (255, 135, 0),
    (95, 215, 95),
    (215, 95, 215),
    (255, 215, 0),
    (0, 215, 175),
    (255, 95, 95),
    (175, 175, 175),
)


def chart_grid(count: int, width: int, height: int) -> tuple[int, int]:
    """(columns, rows per chart) for `count` charts in `width` × `height` cells: two columns from
    80 cells wide, three from 180; rows share the height, never fewer than MIN_ROWS each."""
    columns = 1 if width < 80 or count == 1 else 3 if width >= 180 and count > 4 else 2
    rows = max(1, math.ceil(count / columns))
    return columns, max(MIN_ROWS, height // rows)


def _nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def nice_ticks(low: float, high: float, count: int) -> tuple[list[float], list[str]]:
    """About `count` ticks at an even, round step covering [low, high] (the first at or below
    `low`, the last at or above `high`), with labels of one format."""
    if not high > low:
        pad = abs(low) * 0.05 or 0.5
        low, high = low - pad, high + pad
    step = _nice_step(high - low, count)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [round(i * step, _decimals(step) + 3) for i in range(first, last + 1)]  # no 0.30000000000000004
    largest = max(abs(ticks[0]), abs(ticks[-1]))
    if largest >= 1e5 or step < 1e-3:  # one exponent for all: 0.0e+00 5.0e-05 1.0e-04
        exponent = math.floor(math.log10(largest))
        labels = [f"{t / 10**exponent:.{_decimals(step / 10**exponent)}f}e{exponent}" for t in ticks]
    else:
        labels = [f"{t:,.{_decimals(step)}f}" for t in ticks]
    width = max(map(len, labels))
    return ticks, [label.rjust(width) for label in labels]


def _decimals(step: float) -> int:
    """The decimals that write `step` (and so every multiple of it) exactly: 0.25 → 2, 5 → 0."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    while abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    return decimals


def step_ticks(low: float, high: float, count: int) -> tuple[list[int], list[str]]:
    """Whole-step x ticks within [low, high], about `count` of them (never 0.5 steps)."""
    low_i, high_i = math.floor(low), math.ceil(high)
    step = max(1, math.ceil(_nice_step(max(1, high_i - low_i), count)))
    ticks = list(range(math.ceil(low_i / step) * step, high_i + 1, step)) or [low_i]
    return ticks, [f"{t:,}" for t in ticks]


def thinned(steps: list[float], values: list[float], columns: int) -> tuple[list[float], list[float]]:
    """At most 4 points per column of a plot `columns` cells wide (braille has 2 dots a cell): per
    slice of steps the lowest and the highest point, in step order, so spikes stay drawn; a long
    run then costs a redraw what a short one does."""
    slices = 2 * max(1, columns)
    if len(steps) <= 2 * slices:
        return steps, values
    size = len(steps) / slices
    kept: list[int] = []
    for i in range(slices):
        part = range(int(i * size), int((i + 1) * size))
        low = min(part, key=lambda j: values[j] if math.isfinite(values[j]) else math.inf)
        high = max(part, key=lambda j: values[j] if math.isfinite(values[j]) else -math.inf)
        kept += sorted({low, high})
    return [steps[j] for j in kept], [values[j] for j in kept]


def legend(title: str, labels: list[str], per_layer: bool = False) -> Content:
    """The chart's title, then a coloured mark and name per line when there are several; a per-layer
    chart's lines, one per block, are named by the block's index in the line's colour, to fit."""
    parts: list = [(title, "bold")]
    if per_layer:
        parts.append(" ")
        for label, color in zip(labels, COLORS):
            parts += [" ", (label, "bold " + _hex(color))]
    elif len(labels) > 1:
        for label, color in zip(labels, COLORS):
            parts += ["  ", ("━━ ", _hex(color)), label]
    return Content.assemble(*parts)


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


class ChartPanel(Vertical, can_focus=True):
    """One chart: its legend line and the plot under it; focused, its legend line is highlighted."""

    DEFAULT_CSS = """
    ChartPanel { height: 1fr; }
    ChartPanel > Label { height: 1; width: 1fr; padding: 0 1; }
    ChartPanel > PlotextPlot { height: 1fr; }
    ChartPanel:focus > Label { background: $accent; color: $text; }
    """

    heading: Content | None = None  # the legend line shown

    def compose(self) -> ComposeResult:
        yield Label("")
        yield PlotextPlot()

    def draw(self, title: str, lines: list[tuple[str, list[float], list[float]]], per_layer: bool = False) -> None:
        """Plot `lines` ((label, steps, values)), with ticks fitted to the plot's size; `per_layer`:
        one line per block, the legend names them by index."""
        widget = self.query_one(PlotextPlot)
        heading = legend(title, [label for label, _, _ in lines], per_layer)
        if heading != self.heading:
            self.heading = heading
            self.query_one(Label).update(heading, layout=False)  # one row whatever it says
        width, height = max(20, widget.size.width), max(5, widget.size.height)
        xs = [x for _, steps, _ in lines for x in steps]
        ys = [y for _, _, values in lines for y in values if math.isfinite(y)]
        plt = widget.plt
        plt.clear_data()
        for (_, steps, values), color in zip(lines, COLORS):
            plt.plot(*thinned(steps, values, width), marker="braille", color=color)
        if xs and ys:
            yticks, ylabels = nice_ticks(min(ys), max(ys), max(2, (height - 3) // ROWS_PER_Y_TICK))
            plt.ylim(yticks[0], yticks[-1])
            plt.yticks(yticks, ylabels)
            label_width = len(f"{int(max(xs)):,}") + 3
            xticks, xlabels = step_ticks(min(xs), max(xs), max(1, (width - 10) // (label_width + 4)))
            left, right = min(min(xs), xticks[0]), max(max(xs), xticks[-1])
            plt.xlim(*((left, right) if right > left else (left - 1, right + 1)))  # one step: centred
            plt.xticks(xticks, xlabels)
        widget.refresh()
