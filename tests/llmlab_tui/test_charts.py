"""The monitor's charts: round ticks that line up, whole steps on x, sizes that follow the
terminal, keyboard scrolling and one chart full-screen, at 80×24 and 120×40."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from llmlab_tui.run_view import CHARTS, LAYER_LINES
from llmlab_tui.screens.chart import ChartScreen
from llmlab_tui.screens.monitor import MonitorScreen
from llmlab_tui.widgets.charts import COLORS, MIN_ROWS, ChartPanel, chart_grid, legend, nice_ticks, step_ticks, thinned
from tests.llmlab_tui.pilot_keys import app_on, wait_for
from tests.llmlab_tui.test_monitor import STARTED, metrics


@pytest.mark.parametrize(
    "low, high, count", [(5.37, 6.65, 4), (0.0012, 0.0021, 5), (0, 1.5e-4, 4), (812.0, 19_400.0, 6), (2.0, 2.0, 3)]
)
def test_y_ticks_are_even_round_steps_covering_the_data_with_labels_that_line_up(low, high, count):
    ticks, labels = nice_ticks(low, high, count)
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1  # no skipped value
    step = steps.pop()
    assert step / 10 ** math.floor(math.log10(step)) in (1, 2, 2.5, 5)
    assert ticks[0] <= low and ticks[-1] >= high
    if high > low:  # a flat line gets a margin around it
        assert ticks[0] > low - step and ticks[-1] < high + step
    assert len({len(label) for label in labels}) == 1 and len(set(labels)) == len(labels)
    assert count // 2 <= len(ticks) <= 2 * count + 1


def test_the_labels_of_the_issue_are_round():
    assert nice_ticks(5.37, 6.65, 4)[1] == ["5.0", "5.5", "6.0", "6.5", "7.0"]


def test_x_ticks_are_whole_steps():
    assert step_ticks(1, 1, 5) == ([1], ["1"])  # no 0.50 / 0.75 at step 1
    assert step_ticks(1, 3, 8) == ([1, 2, 3], ["1", "2", "3"])
    ticks, labels = step_ticks(1, 20_000, 5)
    assert all(isinstance(t, int) for t in ticks) and labels[-1] == "20,000" and len(ticks) <= 6


def test_the_grid_grows_with_the_terminal_and_scrolls_below_a_readable_height():
    assert chart_grid(4, 78, 18) == (1, MIN_ROWS)  # 4 rows of 9 in 18: the pane scrolls
    assert chart_grid(4, 80, 18) == (2, 9)
    assert chart_grid(4, 118, 34) == (2, 17)  # 120×40: no 6-row charts over blank rows
    assert chart_grid(1, 118, 34) == (1, 34)
    assert chart_grid(10, 200, 50) == (3, 12)


def dpo_metrics(step: int) -> dict:
    keys = ("rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin")
    return {**metrics(step), **{key: step * 0.1 for key in keys}}


async def monitor_with_charts(pilot, events: list[dict]) -> MonitorScreen:
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen) and pilot.app.screen.drawable)
    monitor = pilot.app.screen
    monitor.view.apply(events)
    await wait_for(pilot, lambda: monitor.drawn == monitor.view.version, delay=0.1)
    await pilot.pause()
    return monitor


def plots(monitor) -> list:
    return [panel for panel in monitor.query(ChartPanel) if panel.display]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_charts_fill_the_pane_keep_their_axes_and_one_opens_full_screen(projects_dir: Path, size):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=size) as pilot:
        monitor = await monitor_with_charts(pilot, [STARTED, *map(metrics, range(1, 301))])
        shown = plots(monitor)
        assert len(shown) == 4
        pane = monitor.query_one("#chart-scroll").size.height
        assert all(panel.size.height == pane // 2 >= MIN_ROWS for panel in shown)  # two rows, all the height
        shown[1].focus()
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ChartScreen))
        full = app.screen
        assert full.chart is CHARTS[1]
        await wait_for(pilot, lambda: full.drawn == monitor.view.version)
        assert full.query_one(ChartPanel).size == (size[0], size[1] - 1)  # all but the footer
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is monitor)


async def test_many_charts_at_80x24_scroll_from_the_keyboard(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await monitor_with_charts(pilot, [{**STARTED, "stage": "dpo"}, *map(dpo_metrics, range(1, 50))])
        assert len(plots(monitor)) == 7 and all(panel.size.height >= MIN_ROWS for panel in plots(monitor))
        scroll = monitor.query_one("#chart-scroll")
        plots(monitor)[0].focus()
        await pilot.press("pagedown")
        await wait_for(pilot, lambda: scroll.scroll_y > 0)
        plots(monitor)[-1].focus()  # focus brings the last chart into view
        await wait_for(pilot, lambda: scroll.scroll_y == scroll.max_scroll_y)


def test_a_long_line_is_thinned_to_the_plot_keeping_each_slice_extremes():
    steps = list(range(1, 10_001))
    values = [float(i % 97) for i in steps]
    values[5_000] = 1e6  # a spike
    kept_steps, kept_values = thinned(steps, values, columns=50)
    assert len(kept_steps) <= 4 * 50 and kept_steps == sorted(kept_steps)
    assert 1e6 in kept_values and min(kept_values) == min(values)
    assert all(values[int(x) - 1] == y for x, y in zip(kept_steps, kept_values))  # real points only
    short = list(range(10))
    assert thinned(short, [0.0] * 10, columns=50) == (short, [0.0] * 10)


def test_a_per_layer_legend_names_each_block_in_its_own_colour_and_fits():
    assert len(set(COLORS)) >= LAYER_LINES  # every block a per-layer chart draws has a colour of its own
    blocks = [str(i) for i in range(LAYER_LINES)]
    for chart in (chart for chart in CHARTS if chart.per_layer):
        heading = legend(chart.title, blocks, per_layer=True)
        assert heading.plain == f"{chart.title}  0 1 2 3 4 5 6 7" and len(heading.plain) <= 38  # 2 charts a row
        assert len({str(span.style) for span in heading.spans if heading.plain[span.start : span.end].isdigit()}) == 8
