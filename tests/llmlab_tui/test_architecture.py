"""The architecture screen with keys only: a broken rule shows under its field with the engine's
text and blocks saving; fixed, it saves; the choices offered are engine.project's tuples; the
first frame draws the values as text, and keys typed before the editors are there still land."""

from __future__ import annotations

import tomllib
from pathlib import Path

from engine import project as schema
from engine.project import ModelConfig, load_project
from engine.project.sizing import padded_vocab_size, parameter_count, tokenizer_vocab_size
from llmlab_tui import app as app_module
from llmlab_tui.app import LabApp
from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.summary import block_diagram, count
from llmlab_tui.widgets.forms import LABEL_WIDTH, FieldRow
from tests.llmlab_tui.pilot_keys import app_on, choose, shown, type_into, wait_for


def _toml(project_dir):
    return tomllib.loads((project_dir / "project.toml").read_text())


async def _open(pilot):
    return await shown(pilot, ArchitectureScreen)


def _problem(screen, path):
    row = next(r for s in screen.query("FieldSet") for r in s.rows.values() if r.path == path)
    return str(row.problem.render()) if row.problem.display else ""


async def test_break_the_architecture_then_fix_it(projects_dir):
    alpha = projects_dir / "alpha"
    before = (alpha / "project.toml").read_text()
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await type_into(pilot, "model-d_model", "100")
        rule = "must be divisible by model.n_heads (8), got 100"
        await wait_for(pilot, lambda: _problem(screen, "model.d_model") == rule)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("Not saved" in n.message for n in app._notifications))
        assert (alpha / "project.toml").read_text() == before

        await type_into(pilot, "model-d_model", "128")
        await wait_for(pilot, lambda: _problem(screen, "model.d_model") == "")
        assert "problem" not in str(screen.query_one("#arch-summary").render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _toml(alpha)["model"]["d_model"] == 128)
    assert load_project(alpha).model.d_model == 128


async def test_a_value_that_is_not_a_number_is_named(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await type_into(pilot, "model-n_layers", "four")
        await wait_for(pilot, lambda: _problem(screen, "model.n_layers") == "expected a whole number, got 'four'")


async def test_mqa_implies_one_kv_head_and_hides_the_field(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        await choose(pilot, "model-attention", "mqa")
        await wait_for(pilot, lambda: not screen.query_one("#model").rows["n_kv_heads"].display)
        assert "MQA 8 q / 1 kv heads" in str(screen.query_one("#arch-summary").render())
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _toml(alpha)["model"]["attention"] == "mqa")
    assert _toml(alpha)["model"]["n_kv_heads"] == 1


async def test_tokenizer_bpe_shows_vocab_size_and_sizes_follow(projects_dir):
    alpha = projects_dir / "alpha"
    app = app_on(alpha, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        rows = screen.query_one("#tokenizer").rows
        assert not rows["vocab_size"].display and not rows["hub_id_or_path"].display
        await choose(pilot, "tokenizer-source", "bpe")
        await wait_for(pilot, lambda: rows["vocab_size"].display)
        await type_into(pilot, "tokenizer-vocab_size", "1000")
        model = load_project(alpha).model
        expected = count(parameter_count(model, padded_vocab_size(1000)))
        await wait_for(pilot, lambda: f"parameters   {expected}" in str(screen.query_one("#arch-summary").render()))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _toml(alpha)["tokenizer"]["source"] == "bpe")
    assert _toml(alpha)["tokenizer"]["vocab_size"] == 1000


async def test_choices_offered_are_the_engines_tuples(projects_dir):
    expected = {
        "positional_encoding": schema.POSITIONAL_ENCODINGS,
        "normalization": schema.NORMALIZATIONS,
        "attention": schema.ATTENTIONS,
        "activation": schema.ACTIVATIONS,
    }
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _open(pilot)
        for name, choices in expected.items():
            select = screen.query_one(f"#model-{name}")
            assert tuple(value for _, value in select._options) == choices


def test_block_diagram_follows_the_choices():
    m = ModelConfig(
        positional_encoding="alibi",
        normalization="layernorm",
        attention="mha",
        n_kv_heads=8,
        activation="gelu",
        d_model=64,
        d_ff=256,
        n_layers=2,
        n_heads=4,
        tie_embeddings=False,
    )
    lines = block_diagram(m)
    assert lines[1].startswith("┌ block × 2 ")
    assert "│ x + Attn(LayerNorm(x))" in lines[2]
    assert "MHA 4 q / 4 kv heads" in lines[3] and "ALiBi" in lines[4] and "GELU 64→256→64" in lines[6]
    assert lines[-1] == "LayerNorm → lm_head"
    assert len({len(line) for line in lines[1:-1]}) == 1  # the box is closed


def test_vocab_unknown_for_a_hub_tokenizer_is_shown_as_such(projects_dir):
    from llmlab_tui.summary import model_size

    project = load_project(projects_dir / "alpha")
    project.tokenizer.source = "gpt2"
    assert tokenizer_vocab_size(project.tokenizer) is None
    assert model_size(project).parameters is None and count(None) == "?"


def sketched(row: FieldRow) -> str:
    """The value a deferred row's line of text shows (after the label's columns)."""
    line = str(row.query_one(".field-sketch").render())
    assert line.startswith(row.spec.name)
    return line[LABEL_WIDTH:].rstrip()


class FirstFrame(LabApp):
    """The app, noting what its first frame held and pressing `keys` as soon as it was made."""

    CSS_PATH = Path(app_module.__file__).parent / LabApp.CSS_PATH  # relative to app.py

    def __init__(self, project, projects_dir, keys=()):
        super().__init__(project, projects_dir=projects_dir)
        self.keys, self.first_frame = keys, {}

    def on_ready(self) -> None:
        super().on_ready()
        screen = self.screen
        self.first_frame = {
            "drawn": {row.path: sketched(row) for row in screen.query(FieldRow)},
            "editors": [row.editor for row in screen.query(FieldRow) if row.editor is not None],
            "editable": screen.editable.is_set(),
        }
        for key in self.keys:  # a burst typed before any editor is there
            self.simulate_key(key)


async def test_the_first_frame_draws_every_value_as_text_and_the_editors_follow(projects_dir):
    app = FirstFrame(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await shown(pilot, ArchitectureScreen)
        first = app.first_frame
        assert first["editors"] == [] and not first["editable"]  # the first frame: text only
        rows = {row.path: row for row in screen.query(FieldRow)}
        assert first["drawn"].keys() == rows.keys()
        model = load_project(projects_dir / "alpha").model
        assert first["drawn"]["model.d_model"] == str(model.d_model)
        assert first["drawn"]["model.attention"] == model.attention
        assert first["drawn"]["model.bias"] == ("[x] true" if model.bias else "[ ] false")  # as the TickBox draws it
        assert not screen.query(".field-sketch")  # then every row has its editor, with the same value
        assert rows["model.d_model"].editor.value == str(model.d_model)
        assert rows["model.attention"].editor.value == model.attention
        assert app.focused is rows["tokenizer.source"].editor  # the focus on the first field, as before


async def test_keys_typed_before_the_editors_are_there_land_in_order(projects_dir):
    # PgDn to the Model section, Tab ×4 to d_model, then replace its value by 128: before any editor exists
    keys = ["pagedown", *["tab"] * 4, "end", "ctrl+u", "1", "2", "8"]
    app = FirstFrame(projects_dir / "alpha", projects_dir, keys)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await shown(pilot, ArchitectureScreen)
        assert app.first_frame["editors"] == []
        d_model = screen.query_one("#model-d_model")
        await wait_for(pilot, lambda: d_model.value == "128")
        assert app.focused is d_model
