"""The tracking layer: report_to's rule, a missing tool refused before any run folder, the scalars
taken from events, a failing tool dropped while the run goes on."""

from __future__ import annotations

import sys

import pytest

from engine import events as ev
from engine import worker
from engine.project import load_project
from engine.project.problems import LLMLabError
from engine.project.schema import TRACKERS
from engine.tracking import CLASSES, Reporter, scalars
from tests.tiny_project import Recorder, make_project


def test_every_tool_the_schema_allows_has_a_class():
    assert tuple(CLASSES) == TRACKERS


def test_report_to_accepts_only_the_known_tools(tmp_path):
    project = make_project(tmp_path / "p")
    assert load_project(project, ['tracking.report_to=["tensorboard", "wandb"]']).tracking.report_to == [
        "tensorboard",
        "wandb",
    ]
    with pytest.raises(LLMLabError) as caught:
        load_project(project, ['tracking.report_to=["tensorboard", "mlflow"]'])
    assert caught.value.lines == ["tracking.report_to: each must be one of tensorboard, trackio, wandb, got 'mlflow'"]
    with pytest.raises(LLMLabError) as caught:
        load_project(project, ['tracking.report_to="wandb"'])
    assert caught.value.lines[0].startswith("tracking.report_to: expected a list")


def test_a_missing_tool_fails_before_the_run_folder_exists(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    monkeypatch.setitem(sys.modules, "trackio", None)
    events = Recorder()
    with pytest.raises(LLMLabError) as caught:
        worker.run(project, "pretrain", ['tracking.report_to=["wandb", "trackio"]'], events=events)
    assert caught.value.lines == [
        "tracking.report_to: wandb is not installed: pip install -e '.[wandb]'",
        "tracking.report_to: trackio is not installed: pip install -e '.[trackio]'",
    ]
    assert not (project / "runs").exists()
    assert [e["type"] for e in events if e["type"] != "phase"] == ["error"]  # after the worker's phase line


def test_scalars_are_the_numbers_of_metrics_and_eval_events():
    metrics = ev.event("metrics", step=3, loss=2.5, lr=1e-3, tokens_seen=96, eta_s=None, shares={"a": {}}, flag=True)
    assert scalars(metrics) == {"train/loss": 2.5, "train/lr": 1e-3, "train/tokens_seen": 96.0}
    assert scalars(ev.event("eval", step=4, loss=2.0, bpb=1.5)) == {"eval/loss": 2.0, "eval/bpb": 1.5}
    assert scalars(ev.event("sample", step=4, samples=[])) == {}


class Tool:
    def __init__(self, fails: bool = False):
        self.fails, self.logged, self.finished = fails, [], None

    def log(self, numbers, step):
        if self.fails:
            raise RuntimeError("connection lost")
        self.logged.append((step, numbers))

    def finish(self, failed):
        self.finished = failed


def test_a_failing_tool_is_dropped_with_a_warning_and_the_others_go_on():
    seen, good, bad = [], Tool(), Tool(fails=True)
    reporter = Reporter(seen.append, {"good": good, "bad": bad})
    reporter(ev.event("metrics", step=1, loss=3.0))
    reporter(ev.event("metrics", step=2, loss=2.0))
    reporter(ev.finished("completed", {}))
    reporter.close()
    assert good.logged == [(1, {"train/loss": 3.0}), (2, {"train/loss": 2.0})]
    assert good.finished is False and bad.finished is None
    warnings = [e["message"] for e in seen if e["type"] == "log"]
    assert warnings == ["tracking: bad failed (connection lost); the run goes on without it"]
    assert [e["type"] for e in seen] == ["metrics", "log", "metrics", "finished"]


def test_a_run_without_a_finished_event_ends_its_tools_as_failed():
    tool = Tool()
    reporter = Reporter(lambda event: None, {"tool": tool})
    reporter(ev.event("metrics", step=1, loss=3.0))
    reporter.close()
    assert tool.finished is True
