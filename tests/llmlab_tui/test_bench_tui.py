"""`llmlab bench tui` at one round: its output shape, the app's start without heavy modules, and a first
frame that already shows the opened project's form; no timings."""

import json

from llmlab_tui.__main__ import main


def test_tui_json(capsys):
    assert main(["bench", "tui", "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["heavy_modules"] == []  # the app paints without torch and friends
    for key in ("interpreter_s", "import_s", "first_paint_s", "first_paint_project_s"):
        assert result[key] > 0
    assert result["first_paint_s"] > result["import_s"]  # the paint comes after the import
    screens = result["first_screens"]
    assert screens["first_paint"]["screen"] == "ProjectsScreen"
    assert screens["first_paint_project"]["screen"] == "ArchitectureScreen"  # opened on the demo's form:
    assert screens["first_paint_project"]["widgets"] > 5 * screens["first_paint"]["widgets"]  # drawn in the first frame


def test_tui_table_ends_with_the_verdict(capsys):
    assert main(["bench", "tui", "--rounds", "1", "--project", "missing"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "tui start, median of 1 fresh processes each, headless 100x30, bytecode cached"
    assert lines[2].startswith("python -c pass") and lines[2].endswith(" s")
    assert lines[-1].startswith("first paint: ")
