"""The inspect views' drawing (llmlab_tui/inspection.py), without the app: a heatmap cell's upper half
is a query's weight, its lower half the next query's, each scaled to its row's largest, later keys
blank; the lens underlines the true next token."""

from textual.color import Color

from llmlab_tui.inspection import HALF, Heat, brief, heatmap, lens_content

HEAT = Heat.from_theme({"background": "#000000", "primary": "#0000ff", "accent": "#ff0000"})


def cells(row):
    """(foreground, background) of each half block of a heatmap row."""
    return [(span.style.foreground, span.style.background) for span in row.spans]


def test_a_cell_holds_two_queries_each_scaled_to_its_row():
    weights = [[1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.5, 0.25, 0.25]]
    axis, first, second = heatmap(["a", " b", "c"], weights, HEAT)
    assert axis.plain.endswith("│abc") and first.plain.endswith("│" + HALF * 3)
    assert first.plain.startswith("  0 a   b  │") and second.plain.startswith("  2 c      │")
    black, red = Color(0, 0, 0), Color(255, 0, 0)
    assert cells(first) == [(red, HEAT(0.25)), (black, red), (black, black)]  # query 0 sees key 0 only
    assert cells(second) == [(red, black), (HEAT(0.5), black), (HEAT(0.5), black)]  # no query 3


def test_the_lens_underlines_the_true_next_token():
    report = {"tokens": ["a", "b"], "layers": [{"top": ["b", "a"], "prob": [0.9, 0.1], "target_prob": [0.9]}]}
    header, first, second, _ = lens_content(report, HEAT).split("\n")
    assert header.plain.split() == ["pos", "token", "L0", "next"]
    assert "b      0.90" in first.plain and first.plain.endswith("b")
    underlined = [span.style.underline for row in (first, second) for span in row.spans]
    assert underlined == [True, False]


def test_the_axes_show_a_words_letters_not_its_space():
    assert [brief(t, 3) for t in (" lives", " ", "in", "\n", "<|endoftext|>")] == ["li…", "␣", "in", "\\n", "<|…"]
    assert [brief(t, 1) for t in (" lives", " ", "in", "<|endoftext|>")] == ["l", "␣", "i", "<"]
