"""The worker processes the app owns: start them, forward their events to a screen, end them.

A `Job` joins a source of events to the screen that shows them. A source is a handle from
engine.worker (engine/processes.py), or anything with the same `poll(timeout) -> [event]`,
`exitcode` (None while it runs), `stop()` and `save()`: `QueueSource` for a plain queue (tests),
`FileSource` for a run another process trains (started by an earlier app, a shell, torchrun),
followed through its metrics.jsonl and controlled through its run folder. One thread per job
drains its source with a timeout, gathers ~100 ms of events into one WorkerEvents message, and
posts WorkerExited once the source has ended and is drained. When the app exits every job it
owns is ended (asked to stop, then killed), except a run left going on purpose (`detach`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing.resource_tracker
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from textual.message_pump import MessagePump

from engine.events import drain
from engine.project.layout import METRICS_FILE
from engine.project.run_control import request
from engine.project.run_lock import holder
from llmlab_tui.messages import WorkerEvents, WorkerExited

BATCH_SECONDS = 0.1  # events gathered into one message
END_SECONDS = 5.0  # how long a job asked to stop may take before it is killed
TRAIN_JOB = "train"  # the runner job name of the (one) training run the app drives


class Job:
    """One source of events drained by a thread into messages for `target`."""

    def __init__(self, name: str, source: Any, target: MessagePump) -> None:
        self.name, self.source, self.target = name, source, target
        self.exitcode: int | None = None
        self.detached = False
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._drain, name=f"llmlab-drain-{name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _drain(self) -> None:
        while not self._halt.is_set():
            batch = self._gather()
            if not batch and self.source.exitcode is not None:
                batch = self.source.poll(0)  # its last words, or the news of its death
            if batch:
                self.target.post_message(WorkerEvents(self.name, batch))
            elif self.source.exitcode is not None:
                self.exitcode = self.source.exitcode
                self.target.post_message(WorkerExited(self.name, self.exitcode))
                return

    def _gather(self) -> list[dict]:
        """The events of the next ~100 ms (an empty list after BATCH_SECONDS without any)."""
        batch = self.source.poll(BATCH_SECONDS)
        deadline = time.monotonic() + BATCH_SECONDS
        while batch and not self._halt.is_set() and (left := deadline - time.monotonic()) > 0:
            more = self.source.poll(left)
            if not more:
                break
            batch += more
        return batch

    def stop(self) -> None:
        """Ask the worker to stop (training: with a checkpoint); its events keep coming until it ends."""
        self.source.stop()

    def save(self) -> None:
        self.source.save()

    def send(self, request: dict) -> None:
        """Put a request on the worker's control queue (the chat worker's generate requests)."""
        self.source.control.put(request)

    def end(self, timeout: float = END_SECONDS) -> None:
        """Stop a worker the app owns, wait up to `timeout` seconds, then kill it; stop draining.
        A run followed through its files (FileSource) is not the app's to end: it is left alone."""
        if not isinstance(self.source, (FileSource, QueueSource)) and self.source.alive():
            self.source.stop()
            if self.source.join(timeout) is None:
                self.source.kill()
                self.source.join()
        self._halt.set()
        self._thread.join()

    def detach(self) -> None:
        """Stop draining and let the worker outlive the app (a training run left going: it runs in a
        session of its own and writes metrics.jsonl itself, engine/worker.py)."""
        self.detached = True
        self._halt.set()


class Runner:
    """The app's jobs by name ("train", "chat", "tool", ...): at most one live job per name."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        # The helper process that spawn queues need is given the real stderr: under Textual's
        # captured one (no file descriptor) it fails to start ("bad value(s) in fds_to_keep").
        with contextlib.redirect_stderr(sys.__stderr__):
            multiprocessing.resource_tracker.ensure_running()

    def start(self, name: str, source: Any, target: MessagePump) -> Job:
        """Drain `source` into messages for `target`; a previous job of that name is ended first."""
        self.end(name)
        self.jobs[name] = job = Job(name, source, target)
        return job

    def running(self, name: str) -> Job | None:
        """The live job called `name`, if any."""
        job = self.jobs.get(name)
        return job if job is not None and job.running and not job.detached else None

    def end(self, name: str) -> None:
        job = self.jobs.pop(name, None)
        if job is not None and not job.detached:
            job.end()

    def shutdown(self) -> None:
        """End every job (the app is exiting); detached ones are left running."""
        for name in list(self.jobs):
            self.end(name)


class QueueSource:
    """A plain queue of events as a job's source; `close(exitcode)` ends it once drained."""

    def __init__(self, events: queue.Queue | None = None) -> None:
        self.queue = events if events is not None else queue.Queue()
        self.exitcode: int | None = None
        self.control: queue.Queue = queue.Queue()

    def poll(self, timeout: float) -> list[dict]:
        return drain(self.queue, timeout)

    def close(self, exitcode: int = 0) -> None:
        self.exitcode = exitcode

    def stop(self) -> None:
        self.control.put("stop")

    def save(self) -> None:
        self.control.put("save")


class FileSource:
    """A run another process trains, followed from the start of its metrics.jsonl and controlled
    through its run folder (`llmlab stop` does the same). It ends after a `finished` or `error`
    event, or once no process holds the run's lock any more (the run died: exit code None → -1)."""

    TERMINAL = ("finished", "error")

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.file = open(self.run_dir / METRICS_FILE, encoding="utf-8", errors="replace")
        self.exitcode: int | None = None
        self._partial = ""

    def poll(self, timeout: float) -> list[dict]:
        if self.file.closed:
            return []
        text = self._partial + self.file.read()
        lines = text.split("\n")
        self._partial = lines.pop()  # a line still being written
        found = [event for event in map(_parse, lines) if event is not None]
        if any(event.get("type") in self.TERMINAL for event in found):
            self.exitcode = 0
            self.file.close()
        elif not found and self.exitcode is None:
            if holder(self.run_dir) is not None:
                time.sleep(timeout)
            elif not self._more():  # read once more: it may have ended just before letting go
                self.exitcode = -1  # nobody trains it, and it never said it ended: it died
                self.file.close()
        return found

    def _more(self) -> bool:
        position = self.file.tell()
        more = bool(self.file.read())
        self.file.seek(position)
        return more

    def stop(self) -> None:
        request(self.run_dir, "stop")

    def save(self) -> None:
        request(self.run_dir, "save")


def _parse(line: str) -> dict | None:
    """An event from one line of metrics.jsonl; None for a blank or broken one (never raised)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
