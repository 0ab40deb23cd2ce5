"""A model's stored lm-eval scores: a new task joins the earlier ones, a task evaluated again
replaces its entry, Compare's measures leave stderr out, a damaged file is refused by name."""

from __future__ import annotations

import pytest

from engine.project.eval_results import measures, metric_name, read_results, results_file, results_table, store_results
from engine.project.problems import LLMLabError


def entry(acc, stderr=0.01, **fields):
    return {"metrics": {"acc": acc, "acc_stderr": stderr, "acc_norm": acc / 2}, "samples": 10, **fields}


def test_tasks_join_and_replace_their_own_entries(tmp_path):
    store_results(tmp_path, {"a": entry(0.5), "b": entry(0.25)})
    store_results(tmp_path, {"a": entry(0.75)})
    tasks = read_results(tmp_path)["tasks"]
    assert set(tasks) == {"a", "b"} and tasks["a"]["metrics"]["acc"] == 0.75
    assert measures(tmp_path) == {"a acc": 0.75, "a acc_norm": 0.375, "b acc": 0.25, "b acc_norm": 0.125}


def test_a_model_never_evaluated_has_no_measures_and_a_damaged_file_is_refused(tmp_path):
    assert measures(tmp_path) == {} and read_results(tmp_path)["tasks"] == {}
    results_file(tmp_path).parent.mkdir()
    results_file(tmp_path).write_text("{not json")
    with pytest.raises(LLMLabError, match=r"eval/results.json: not a results file llmlab eval can read"):
        read_results(tmp_path)
    assert measures(tmp_path) == {}


def test_metric_names_drop_the_default_filter_only():
    assert metric_name("acc,none") == "acc"
    assert metric_name("exact_match,strict-match") == "exact_match (strict-match)"


def test_the_table_has_a_row_per_metric_with_its_stderr():
    lines = results_table({"demo": entry(0.5, version=1.0, num_fewshot=0), "x": entry(1.0, stderr=None)})
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    assert cells[0] == ["task", "version", "shots", "samples", "metric", "value", "stderr"]
    assert cells[2] == ["demo", "1.0", "0", "10", "acc", "0.5000", "0.0100"]
    assert cells[3] == ["", "", "", "", "acc_norm", "0.2500", "—"]
    assert cells[4][:1] + cells[4][4:] == ["x", "acc", "1.0000", "—"]
    assert lines[1].startswith("|---") and lines[1].endswith("-:|")
