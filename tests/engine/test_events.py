"""The event vocabulary and metrics.jsonl."""

from __future__ import annotations

import pytest

from engine import events as ev


def test_an_event_is_a_plain_dict_with_type_and_time():
    e = ev.event("metrics", step=3, loss=1.5)
    assert e["type"] == "metrics" and e["step"] == 3 and e["loss"] == 1.5
    assert isinstance(e["time"], float)


def test_unknown_types_levels_and_statuses_are_refused():
    with pytest.raises(ValueError, match="unknown event type 'metric'"):
        ev.event("metric")
    with pytest.raises(ValueError, match="unknown log level 'debug'"):
        ev.log("x", "debug")
    with pytest.raises(ValueError, match="unknown finish status 'done'"):
        ev.finished("done", {})


def test_helpers_fill_their_fields():
    assert ev.log("hello", "warning") | {"time": 0} == {
        "type": "log",
        "time": 0,
        "level": "warning",
        "message": "hello",
    }
    assert ev.error("boom", "Traceback...")["traceback"] == "Traceback..."
    assert ev.finished("stopped", {"steps": 3})["report"] == {"steps": 3}


def test_control_messages_as_strings_or_dicts():
    assert ev.control_type("stop") == "stop"
    assert ev.control_type({"type": "save"}) == "save"
    with pytest.raises(ValueError):
        ev.control_type("pause")


def test_event_log_appends_lines_that_read_back(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    written = [ev.event("started", stage="pretrain"), ev.event("metrics", step=1, loss=2.0)]
    with ev.EventLog(path) as log:
        log.write(written[0])
    with ev.EventLog(path) as log:  # a resumed run appends
        log.write(written[1])
    assert ev.read_events(path) == written


def test_bad_lines_anywhere_are_skipped_and_counted(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "log", "time": 1}\n{"type": "metr')
    assert ev.read_events(path) == [{"type": "log", "time": 1}]
    path.write_text('{"type": "metr\n{"type": "log", "time": 1}\n[1, 2]\n\xff\n\n')
    events = ev.read_events(path)
    assert events == [{"type": "log", "time": 1}] and events.skipped == 3


def test_a_torn_last_line_is_cut_before_appending(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "log", "time": 1}\n{"type": "metrics", "st')
    with ev.EventLog(path) as log:  # e.g. the resume after a full disk
        log.write({"type": "log", "time": 2})
    assert path.read_text() == '{"type": "log", "time": 1}\n{"type": "log", "time": 2}\n'
    path.write_text('{"type": "no newline at all')
    with ev.EventLog(path) as log:
        log.write({"type": "log", "time": 3})
    assert ev.read_events(path) == [{"type": "log", "time": 3}] and ev.read_events(path).skipped == 0


def test_numbers_that_are_not_builtins_are_written_as_floats(tmp_path):
    import numpy as np

    with ev.EventLog(tmp_path / "m.jsonl") as log:
        log.write(ev.event("metrics", loss=np.float32(1.5)))
    assert ev.read_events(tmp_path / "m.jsonl")[0]["loss"] == 1.5


def test_drain_waits_for_the_first_event_then_takes_what_is_there():
    import queue

    q = queue.Queue()
    assert ev.drain(q, 0.01) == []
    for n in range(3):
        q.put(n)
    assert ev.drain(q, 0.01) == [0, 1, 2]


def test_error_event_gives_a_problem_its_lines_and_other_exceptions_their_type():
    from engine.project.problems import LLMLabError

    try:
        raise LLMLabError(["a.b: too big", "c: missing"])
    except LLMLabError as error:
        problem = ev.error_event(error)
    try:
        raise KeyError("x")
    except KeyError as error:
        crash = ev.error_event(error)
    assert problem["type"] == "error" and problem["message"] == "a.b: too big\nc: missing" and problem["problem"]
    assert crash["message"] == "KeyError: 'x'" and "Traceback (most recent call last)" in crash["traceback"]
    assert not crash["problem"]
