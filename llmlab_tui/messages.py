"""Messages from worker processes to the screen that started them: the engine's events, batched.

The runner (llmlab_tui/runner.py) drains a worker's queue in a thread and posts one `WorkerEvents`
per ~100 ms of events (one message per event floods Textual's queue and stalls key presses), then
`WorkerExited` once the process has ended and everything it sent was delivered. The events are the
engine's plain dicts (engine/events.py tables each type's fields); screens fold them by `type`.
"""

from __future__ import annotations

from textual.content import Content
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


def error_content(event: dict) -> Content:
    """An `error` event as a screen shows it: the message, then the traceback unless the input was
    refused (`problem`: the message names the field and the rule, a traceback would only bury it)."""
    if event.get("problem"):
        return Content.assemble((event["message"], "$text-warning bold"))
    return Content.assemble((f"{event['message']}\n", "$text-error bold"), event.get("traceback", ""))
