"""The runner: events gathered into few messages, in order, then one exit message; a followed
metrics.jsonl read line by line as another process writes it."""

from __future__ import annotations

import json
import threading

from engine.project.run_control import take_requests
from engine.project.run_lock import RunLock
from llmlab_tui.messages import WorkerEvents, WorkerExited
from llmlab_tui.runner import FileSource, Job, QueueSource


class Inbox:
    """Stands in for a screen: keeps the messages posted to it."""

    def __init__(self) -> None:
        self.messages: list = []
        self.exited = threading.Event()

    def post_message(self, message) -> bool:
        self.messages.append(message)
        if isinstance(message, WorkerExited):
            self.exited.set()
        return True


def test_a_flood_of_events_arrives_in_order_in_one_message_per_batch():
    source, inbox = QueueSource(), Inbox()
    for step in range(5000):
        source.queue.put({"type": "metrics", "step": step})
    source.close(0)
    Job("train", source, inbox)
    assert inbox.exited.wait(10)
    batches = [m for m in inbox.messages if isinstance(m, WorkerEvents)]
    assert len(batches) == 1  # everything already queued comes in the first poll
    assert [e["step"] for e in batches[0].events] == list(range(5000))
    assert isinstance(inbox.messages[-1], WorkerExited) and inbox.messages[-1].exitcode == 0


def test_stop_and_save_go_to_the_control_queue():
    source, inbox = QueueSource(), Inbox()
    job = Job("train", source, inbox)
    job.stop()
    job.save()
    assert [source.control.get_nowait(), source.control.get_nowait()] == ["stop", "save"]
    source.close(0)
    assert inbox.exited.wait(10)
    job.end()


def test_a_followed_file_gives_whole_lines_and_ends_after_the_last_event(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"type": "started"}) + "\n" + '{"type": "met')
    with RunLock(tmp_path):
        source = FileSource(tmp_path)
        assert [e["type"] for e in source.poll(0.01)] == ["started"] and source.exitcode is None
        with open(path, "a") as f:
            f.write('rics", "step": 1}\n{torn\n' + json.dumps({"type": "finished", "status": "completed"}) + "\n")
        assert [e["type"] for e in source.poll(0.01)] == ["metrics", "finished"]  # a bad line is skipped
    assert source.exitcode == 0 and source.poll(0.01) == []


def test_a_followed_run_whose_process_dies_ends_and_is_controlled_through_its_folder(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"type": "started"}) + "\n")
    lock = RunLock(tmp_path).acquire()
    source = FileSource(tmp_path)
    assert [e["type"] for e in source.poll(0.01)] == ["started"]
    source.save()
    source.stop()
    assert take_requests(tmp_path) == ["save", "stop"]
    assert source.poll(0.01) == [] and source.exitcode is None
    lock.release()  # killed: no finished event, nobody holds the lock
    assert source.poll(0.01) == [] and source.exitcode == -1
