"""The worker process: errors arrive with their traceback, a killed child is noticed, stop is clean."""

from __future__ import annotations

import os
import signal
import sys

from engine import worker
from tests.tiny_project import make_project


def first_event(handle, kind: str, seen: list) -> dict:
    for ev in handle.events():
        seen.append(ev)
        if ev["type"] == kind:
            return ev
    raise AssertionError(f"no {kind} event; got {[e['type'] for e in seen]}")


def test_importing_the_worker_does_not_import_torch():
    code = "import sys, engine.worker, engine.events; sys.exit('torch' in sys.modules)"
    assert os.system(f'{sys.executable} -c "{code}"') == 0


def test_an_exception_arrives_as_an_error_event_with_its_traceback(tmp_path):
    handle = worker.start_worker(tmp_path / "missing", "pretrain")
    phase, *events = list(handle.events())
    assert phase["type"] == "phase" and phase["name"] == "worker"  # within a moment of the start
    assert [e["type"] for e in events] == ["error"]
    assert "missing" in events[0]["message"]
    assert "Traceback (most recent call last)" in events[0]["traceback"]
    assert "LLMLabError" in events[0]["traceback"]
    assert handle.exitcode == 1


def test_a_worker_killed_by_sigkill_is_reported_dead_with_its_exit_code(tmp_path):
    project = make_project(tmp_path / "p", steps=100_000, eval_every=0)
    handle = worker.start_worker(project, "pretrain")
    seen: list = []
    first_event(handle, "metrics", seen)
    os.kill(handle.pid, signal.SIGKILL)
    rest = list(handle.events())  # returns: the parent does not hang on a dead child
    assert handle.exitcode == -signal.SIGKILL
    assert rest[-1]["type"] == "error"
    assert "SIGKILL" in rest[-1]["message"] and "-9" in rest[-1]["message"]


def test_stop_checkpoints_and_finishes_cleanly(tmp_path):
    project = make_project(tmp_path / "p", steps=100_000, eval_every=0)
    handle = worker.start_worker(project, "pretrain")
    seen: list = []
    first_event(handle, "metrics", seen)
    handle.stop()
    seen += list(handle.events())
    assert handle.exitcode == 0
    assert seen[-1]["type"] == "finished" and seen[-1]["status"] == "stopped"
    checkpoint = [e for e in seen if e["type"] == "checkpoint"][-1]
    assert os.path.isfile(os.path.join(checkpoint["path"], "trainer_state.pt"))
