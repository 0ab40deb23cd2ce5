"""The run lock (one live process per run, named in the refusal) and the control requests that
reach a live run from another process."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from engine.project.problems import LLMLabError
from engine.project.run_control import request, take_requests
from engine.project.run_lock import RunLock, holder


def _hold(run_dir, ready, release):
    with RunLock(run_dir):
        ready.set()
        release.wait(30)


def test_a_second_lock_on_the_same_run_is_refused_with_the_holder_named(tmp_path):
    with RunLock(tmp_path):
        assert holder(tmp_path)["pid"] == os.getpid()
        with pytest.raises(LLMLabError) as refused:
            RunLock(tmp_path).acquire()
        assert refused.value.lines[0].startswith(f"{tmp_path.name}: trained right now by pid {os.getpid()} on ")
    assert holder(tmp_path) is None
    RunLock(tmp_path).acquire().release()  # free again


def test_a_lock_dies_with_its_process_even_when_killed(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=_hold, args=(tmp_path, ready, release))
    child.start()
    assert ready.wait(60)
    assert holder(tmp_path)["pid"] == child.pid
    child.kill()
    child.join()
    assert holder(tmp_path) is None


def test_requests_reach_a_live_run_once_each_in_order(tmp_path):
    with pytest.raises(LLMLabError, match="no process is training this run"):
        request(tmp_path, "stop")
    with RunLock(tmp_path):
        request(tmp_path, "save")
        request(tmp_path, "stop")
        assert take_requests(tmp_path) == ["save", "stop"]
        assert take_requests(tmp_path) == []
        with pytest.raises(LLMLabError, match="control: must be one of stop, save"):
            request(tmp_path, "pause")
