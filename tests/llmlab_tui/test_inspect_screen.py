"""F8 at 80×24 on a tiny model saved in a project's run, each view computed by the real worker tool:
←/→ and [ ] move the heatmap between heads and layers without the worker, the lens grid holds the
report's tokens, the ablation table is sorted by damage (mean mode passed through), the surprise
view totals in bits per byte, and a refused text is shown on the screen, which goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.inspection.render import shown
from llmlab_tui.inspection import brief
from llmlab_tui.screens.inspect import InspectScreen
from tests.engine.inspection.models import model_run
from tests.llmlab_tui.pilot_keys import app_on, run_palette, show, wait_for
from tests.tiny_project import make_project

SLOW = {"tries": 1200, "delay": 0.1}  # a worker start imports torch
CONTEXT = 64


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("inspect") / "projects" / "tiny")
    model_run(root, attention="gqa", n_kv_heads=2, max_seq_len=CONTEXT)
    return root


def body(screen) -> str:
    return str(screen.query_one("#inspect-body").render())


def text_of(screen, widget_id: str) -> str:
    return str(screen.query_one(widget_id).render())


def reversed_rows(screen) -> list[str]:
    """The lines of the body drawn reversed (the marked head of the summary table)."""
    content = screen.query_one("#inspect-body").render()
    marked = [content.plain[s.start : s.end] for s in content.spans if "reverse" in str(s.style)]
    return [text.split()[0] for text in marked]


async def read(pilot, screen, view: str, text: str | None = None) -> dict:
    """Type `text` and Enter (or Ctrl+R), then wait for the worker's report of `view`."""
    before = screen.reports.get(view)
    if text is None:
        await pilot.press("ctrl+r")
    else:
        screen.query_one("#inspect-prompt").focus()
        await pilot.press("end", "ctrl+u", *text, "enter")
    await wait_for(pilot, lambda: screen.reports.get(view) not in (None, before) and screen.running is None, **SLOW)
    return screen.reports[view][1]


async def test_attention_moves_between_heads_and_layers_then_the_lens(project: Path):
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f8", InspectScreen)
        event = await read(pilot, screen, "attention", "the cat")
        report = event["report"]
        assert len(report["all_weights"]) == 2 and len(report["all_weights"][0]) == 4
        assert text_of(screen, "#inspect-title").startswith("layer 0 head 0 (kv group 0)")
        assert reversed_rows(screen) == ["L0.H0"]
        first = screen.query_one("#inspect-body").render()
        lines = first.plain.splitlines()
        axis, first_row = lines[0].split("│")[1], lines[1].split("│")[1]
        assert axis.split()[0] == "".join(brief(t, 1) for t in report["tokens"])  # a key a column
        assert axis.split()[1:] == ["head", "kv", "ent", "prev", "first", "ind"]  # the table beside
        assert first_row.split()[0] == "▀" * len(report["tokens"]) and "L1.H3" in first.plain  # every head
        assert max(len(line) for line in lines) <= 78  # beside each other in 80 columns
        await pilot.press("right", "right")
        assert text_of(screen, "#inspect-title").startswith("layer 0 head 2 (kv group 1)")
        assert reversed_rows(screen) == ["L0.H2"]
        assert screen.query_one("#inspect-body").render().spans != first.spans  # another head's colours
        await pilot.press("right_square_bracket", "left")
        assert text_of(screen, "#inspect-title").startswith("layer 1 head 1 (kv group 0)")
        assert screen.reports["attention"][1] is event  # no worker ran for it

        await pilot.press("2")  # the lens has no report for this text: it runs
        await wait_for(pilot, lambda: "lens" in screen.reports and screen.running is None, **SLOW)
        lens = screen.reports["lens"][1]["report"]
        rows = body(screen).splitlines()
        assert rows[0].split() == ["pos", "token", "L0", "L1", "next"]
        for t in range(len(lens["tokens"])):
            cells = [f"{shown(layer['top'][t], 6):<6} {layer['prob'][t]:4.2f}" for layer in lens["layers"]]
            assert all(cell in rows[1 + t] for cell in cells), rows[1 + t]
        await pilot.press("1")  # back: the attention report still answers the text, no worker
        assert screen.running is None and screen.reports["attention"][1] is event


async def test_ablation_rows_sorted_by_damage_in_mean_mode(project: Path):
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.current_mode == "architecture")
        await run_palette(pilot, "Ablation table")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectScreen) and app.screen.view == "ablate")
        screen = app.screen
        screen.set_focus(None)
        assert screen.running is None  # ablation waits for Ctrl+R
        assert "ablation: zero" in text_of(screen, "#inspect-title")
        await pilot.press("m")
        assert "ablation: mean" in text_of(screen, "#inspect-title")
        await pilot.press("ctrl+r")
        assert "running" in text_of(screen, "#inspect-status")
        report = (await read(pilot, screen, "ablate"))["report"]
        lines = body(screen).splitlines()
        assert lines[0].startswith(f"baseline held-out loss {report['baseline']:.4f}") and "(mean ablation)" in lines[0]
        drawn = [line.split() for line in lines[2:]]
        assert [row[0] for row in drawn] == [row["component"] for row in report["rows"]]
        assert len(drawn) == 2 * 4 + 2 + 2  # every head, MLP and block
        damage = [float(row[2]) for row in drawn]
        assert damage == sorted(damage, reverse=True) and damage[0] > 0


async def test_surprise_then_a_refused_text_is_shown(project: Path):
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show(pilot, "f8", InspectScreen)
        screen.set_focus(None)
        await pilot.press("3")  # the default text, read at once
        await wait_for(pilot, lambda: "tokens" in screen.reports and screen.running is None, **SLOW)
        report = screen.reports["tokens"][1]["report"]
        text = body(screen)
        assert text.splitlines()[0] == "".join(shown(row["token"], 40) for row in report["tokens"])
        assert f"{report['bpb']:.3f} bits/byte" in text and "worst: " in text
        assert {len(row["top"]) for row in report["tokens"]} == {3}  # what 80 columns hold
        await read(pilot, screen, "tokens", "x" * CONTEXT)
        assert f"--prompt: {CONTEXT + 1} tokens (EOS included), but the model's context is {CONTEXT}" in body(screen)
        assert "refused" in text_of(screen, "#inspect-status")
        screen.query_one("#inspect-prompt").focus()
        await pilot.press("ctrl+u", "enter")
        assert "type some text" in text_of(screen, "#inspect-status") and screen.running is None
