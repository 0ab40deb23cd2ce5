"""Messages from worker processes to the screen that started them: the engine's events, batched.

The runner (llmlab_tui/runner.py) drains a worker's queue in a thread and posts one `WorkerEvents`
per ~100 ms of events (one message per event floods Textual's queue and stalls key presses), then
`WorkerExited` once the process has ended and everything it sent was delivered. The events are the
engine's plain dicts (engine/events.py tables each type's fields); screens fold them by `type`.
"""

from __future__ import annotations

from textual.message import Message


class WorkerEvents(Message):
    """The events a worker sent in the last ~100 ms, oldest first."""

    def __init__(self, job: str, events: list[dict]) -> None:
        super().__init__()
        self.job, self.events = job, events

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event.get("type") == kind]


class WorkerExited(Message):
    """The worker behind `job` has ended (exit code None: the source has no process, e.g. a file)."""

    def __init__(self, job: str, exitcode: int | None) -> None:
        super().__init__()
        self.job, self.exitcode = job, exitcode
