"""Saving edits project.toml in place: no change leaves the file byte-identical, one change
changes one line, comments and omitted defaults survive; a fresh file is written whole."""

from __future__ import annotations

import difflib
import shutil
import tomllib
from pathlib import Path

import pytest

from engine.project import OPTIMIZER_DEFAULTS, TEMPLATES_DIR, load_project, project_to_dict, save_project

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted([*(REPO / "projects").glob("*/project.toml"), *TEMPLATES_DIR.glob("*.toml")])


def _copy(file: Path, tmp_path: Path) -> Path:
    shutil.copy(file, tmp_path / "project.toml")
    return tmp_path


def _changed_lines(before: str, after: str) -> list[str]:
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("file", SHIPPED, ids=lambda f: f"{f.parent.name}/{f.name}")
def test_saving_an_unchanged_shipped_project_leaves_it_byte_identical(file, tmp_path):
    root = _copy(file, tmp_path)
    before = (root / "project.toml").read_bytes()
    save_project(load_project(root))
    assert (root / "project.toml").read_bytes() == before


def test_changing_one_field_changes_that_one_line_and_keeps_its_comment(tmp_path):
    root = _copy(REPO / "projects" / "demo" / "project.toml", tmp_path)
    before = (root / "project.toml").read_text()
    project = load_project(root)
    project.pretrain.steps += 1
    save_project(project)
    after = (root / "project.toml").read_text()
    old, new = _changed_lines(before, after)
    assert old.startswith("-steps = ") and new == old.replace(
        f"= {project.pretrain.steps - 1}", f"= {project.pretrain.steps}"
    ).replace("-", "+", 1)
    assert load_project(root) == project


def test_a_default_the_file_leaves_out_is_written_only_when_it_changes(tmp_path):
    (tmp_path / "project.toml").write_text('# my notes\nname = "p"\n\n[model]\nd_model = 64  # small\nn_heads = 4\n')
    project = load_project(tmp_path)
    save_project(project)
    assert (
        tmp_path / "project.toml"
    ).read_text() == '# my notes\nname = "p"\n\n[model]\nd_model = 64  # small\nn_heads = 4\n'
    project.model.dropout = 0.1
    project.pretrain.optimizer.options["weight_decay"] = 0.0
    save_project(project)
    text = (tmp_path / "project.toml").read_text()
    assert text.startswith('# my notes\nname = "p"\n\n[model]\nd_model = 64  # small\nn_heads = 4\ndropout = 0.1\n')
    assert tomllib.loads(text)["pretrain"] == {"optimizer": {"name": "adamw", "weight_decay": 0.0}}
    assert load_project(tmp_path) == project


def test_another_optimizer_drops_the_old_settings_and_leaves_its_defaults_implied(tmp_path):
    (tmp_path / "project.toml").write_text('name = "p"\n\n[pretrain.optimizer]\nname = "adamw"\nbetas = [0.9, 0.9]\n')
    project = load_project(tmp_path)
    project.pretrain.optimizer = type(project.pretrain.optimizer).default("lion")
    project.pretrain.optimizer.options["weight_decay"] = 0.2
    save_project(project)
    assert tomllib.loads((tmp_path / "project.toml").read_text())["pretrain"]["optimizer"] == {
        "name": "lion",
        "betas": OPTIMIZER_DEFAULTS["lion"]["betas"],
        "weight_decay": 0.2,
    }
    assert load_project(tmp_path) == project


def test_datasets_added_and_removed_in_place(tmp_path):
    root = _copy(REPO / "projects" / "demo" / "project.toml", tmp_path)
    project = load_project(root)
    first = project.sft.datasets[0]
    project.sft.datasets = [first, type(first)(path="more.jsonl", weight=2.0)]
    save_project(project)
    assert load_project(root) == project
    assert tomllib.loads((root / "project.toml").read_text())["sft"]["datasets"][1] == {
        "path": "more.jsonl",
        "weight": 2.0,
    }
    project.sft.datasets = [first]
    save_project(project)
    assert load_project(root) == project


def test_a_new_file_is_written_whole_and_reads_back(tmp_path):
    project = load_project(REPO / "projects" / "demo")
    target = save_project(project, tmp_path)
    assert tomllib.loads(target.read_text()) == project_to_dict(project)
