"""The project layout: checkpoint names and the one answer to "what kind of model directory is this?"."""

from __future__ import annotations

from engine.project.layout import ADAPTER, FULL, MERGED, merged_dir, model_kind, step_name


def test_step_names_are_zero_padded():
    assert step_name(200) == "step-000200"
    assert sorted([step_name(10), step_name(9)]) == [step_name(9), step_name(10)]


def test_model_kinds(tmp_path):
    plain = tmp_path / "final"
    plain.mkdir()
    assert model_kind(plain) is None
    (plain / "adapter_config.json").write_text("{}")
    assert model_kind(plain) == ADAPTER
    (plain / "config.json").write_text("{}")  # a full model, even with adapter files beside it
    assert model_kind(plain) == FULL
    merged = merged_dir(plain)
    assert merged.name == "final-merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    assert model_kind(merged) == MERGED
    assert model_kind(tmp_path / "missing") is None
