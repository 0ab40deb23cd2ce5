"""What Chat's probability view draws: a token's band by its probability, tokens written so that
spaces and line ends show, the cursor's line."""

from __future__ import annotations

from llmlab_tui.widgets.token_probs import BANDS, band, tokens_content, top_line, visible

ROWS = [
    {"token": "Hi", "prob": 0.7, "top": [{"token": "Hi", "prob": 0.7}, {"token": "Hello", "prob": 0.2}]},
    {"token": "\n", "prob": 0.05, "top": [{"token": " there", "prob": 0.6}, {"token": "\n", "prob": 0.05}]},
]


def test_bands_go_by_probability():
    likely, middling, unlikely = (style for _, style in BANDS)
    probs = (1.0, 0.5, 0.49, 0.1, 0.099, 0.0)
    assert [band(p) for p in probs] == [likely, likely, middling, middling, unlikely, unlikely]


def test_tokens_show_their_spaces_and_line_ends():
    assert visible(" a\tb\n") == "␣a⇥b↵"
    content = tokens_content(ROWS, cursor=1)
    assert content.plain == "Hi↵\n"
    styles = [(content.plain[span.start : span.end], str(span.style)) for span in content.spans]
    assert styles == [("Hi", band(0.7)), ("↵\n", band(0.05) + " reverse bold")]


def test_the_line_names_the_cursors_token_and_its_alternatives():
    assert top_line(ROWS, 1).plain == "token 2/2 ↵ 5.0% · ␣there 60.0%  ↵ 5.0%  "
