"""`llmlab bench tui` at one round: its output shape, the app's start without heavy modules, and the
opened project's form on its first screen; no timings."""

import json

from llmlab_tui.__main__ import main


def test_tui_json(capsys):
    assert main(["bench", "tui", "--rounds", "1", "--train-steps", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["heavy_modules"] == []  # the app paints without torch and friends
    for key in ("interpreter_s", "import_s", "first_paint_s", "first_paint_project_s", "editable_project_s"):
        assert result[key] > 0
    assert result["first_paint_s"] > result["import_s"]  # the paint comes after the import
    screens = result["first_screens"]
    assert screens["first_paint"]["screen"] == "ProjectsScreen"
    assert screens["first_paint_project"]["screen"] == "ArchitectureScreen"  # opened on the demo's form:
    assert screens["first_paint_project"]["widgets"] > 5 * screens["first_paint"]["widgets"]  # its fields, editable
    assert result["textual_bare_s"] > 0 and screens["textual_form"]["screen"] == "plain Textual"
    assert screens["textual_form"]["widgets"] > screens["textual_bare"]["widgets"]  # the demo's fields: a row each


def test_tui_table_ends_with_the_verdict(capsys):
    assert main(["bench", "tui", "--rounds", "1", "--train-steps", "0", "--project", "missing"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "tui start, median of 1 fresh processes each, on a 100x30 terminal, bytecode cached"
    assert lines[2].startswith("python -c pass") and lines[2].endswith(" s")
    assert lines[-1].startswith("first paint: ")


def test_training_headless_and_from_the_app_is_compared(tmp_path):
    from llmlab_tui.bench import _training_lines
    from llmlab_tui.bench_training import compare
    from tests.tiny_project import make_project

    result = compare(make_project(tmp_path / "tiny", steps=4, eval_every=0), 4)
    assert result["headless"]["steps"] == result["app"]["steps"] == 4  # both runs trained every step
    assert result["app"]["state"] == "completed" and result["app"]["redraws"] > 0  # the Monitor watched it
    assert result["ratio"] == result["app"]["tokens_per_s"] / result["headless"]["tokens_per_s"]
    assert _training_lines(result).splitlines()[-1].startswith("app / headless: ")
