"""The worker: run one stage of a project, emitting events and obeying control messages.

`run(...)` is the single entry every way of training goes through: the app (in a child process
started by `start_worker`), the CLI (`llmlab run`, in-process), torchrun (one process a rank).
This module imports no torch at module level: the app imports it to hand `run` to a spawned
process. The parent's side:

    handle = start_worker("projects/demo", "pretrain", overrides=["pretrain.steps=100"])
    for ev in handle.events():          # blocks; ends once the child has exited and is drained
        ...                             # plain dicts (engine/events.py)
    handle.exitcode                     # 0 after `finished`; non-zero after `error` or a crash
    handle.stop() / handle.save()       # control messages (any time while it runs)

`events()` never hangs on a dead child: if the process dies without a `finished` or `error`
event (SIGKILL, the OOM killer, a segfault), it yields a synthesized `error` event naming the
exit code. `poll(timeout)` gives the events available now, for a caller with its own loop.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from engine import events as ev
from engine.project.problems import LLMLabError

TERMINAL_EVENTS = ("finished", "error")


def run(project_path: str | Path, stage: str, overrides: list[str] | tuple[str, ...] = (), events: Any = None,
        control: Any = None, device: str | None = None, resume: bool = False) -> dict:
    """Train `stage` of the project; returns the `finished` report.

    `events`: any object with `put(event)` (a queue), or None; every event also goes to the
    run's metrics.jsonl. `control`: any object with `get_nowait()` raising `queue.Empty`
    (a queue of "stop" / "save"), or None. An exception is emitted as an `error` event with
    its traceback, then raised.
    """
    emit = _Emitter(events)
    try:
        from engine.setup import train_stage

        return train_stage(project_path, stage, list(overrides), emit, emit.open_log, _poller(control),
                           device, resume)
    except BaseException as error:
        message = str(error) if isinstance(error, LLMLabError) else f"{type(error).__name__}: {error}"
        emit(ev.error(message, traceback.format_exc()))
        raise
    finally:
        emit.close()


class _Emitter:
    """Sends each event to the queue and, once the run directory is known, to metrics.jsonl."""

    def __init__(self, events: Any):
        self.queue, self.log = events, None

    def open_log(self, path: Path) -> None:
        self.log = ev.EventLog(path)

    def __call__(self, event: dict) -> None:
        if self.log is not None:
            self.log.write(event)
        if self.queue is not None:
            self.queue.put(event)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None


def _poller(control: Any) -> Callable[[], str | None]:
    """A function giving the next control message ("stop" / "save") or None."""

    def poll() -> str | None:
        if control is None:
            return None
        try:
            return ev.control_type(control.get_nowait())
        except queue.Empty:
            return None

    return poll


# -- the parent's side ----------------------------------------------------------------------------


class WorkerHandle:
    """A worker process started by `start_worker` / `spawn`, with its two queues."""

    def __init__(self, process, events_queue, control_queue):
        self.process, self.events_queue, self.control = process, events_queue, control_queue
        self._done = False  # a terminal event was seen

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        """None while running; 0 after success; 1 after an error; -N when killed by signal N."""
        return self.process.exitcode

    def stop(self) -> None:
        self.control.put("stop")

    def save(self) -> None:
        self.control.put("save")

    def poll(self, timeout: float = 0.1) -> list[dict]:
        """The events available within `timeout` seconds; after the child died, a last `error`
        event if it never sent `finished` or `error`. Empty once everything was delivered."""
        found = []
        try:
            found.append(self.events_queue.get(timeout=timeout))
            while True:
                found.append(self.events_queue.get_nowait())
        except queue.Empty:
            pass
        self._done = self._done or any(e.get("type") in TERMINAL_EVENTS for e in found)
        if not found and not self.process.is_alive() and not self._done:
            self._done = True
            found.append(_death_event(self.process.exitcode))
        return found

    def events(self, poll_interval: float = 0.1) -> Iterator[dict]:
        """Every event until the child has exited and its queue is drained."""
        while True:
            batch = self.poll(poll_interval)
            yield from batch
            if not batch and not self.process.is_alive():
                self.process.join()
                return

    def join(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()


def _death_event(exitcode: int | None) -> dict:
    if exitcode is not None and exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name} (exit code {exitcode})"
    else:
        how = f"exited with code {exitcode} without reporting why"
    hint = " — out of memory?" if exitcode == -signal.SIGKILL else ""
    return ev.error(f"the worker process {how}{hint}", "")


def spawn(target: Callable[..., Any], **kwargs) -> WorkerHandle:
    """Start `target(**kwargs, events=queue, control=queue)` in a `spawn` child process.

    `target` must be importable by name (a module-level function). An exception in it makes
    the child exit with code 1 (the target is expected to have emitted its `error` event).
    """
    context = multiprocessing.get_context("spawn")
    events_queue, control_queue = context.Queue(), context.Queue()
    process = context.Process(target=_child_main, args=(target, kwargs, events_queue, control_queue),
                              name=f"llmlab-{getattr(target, '__name__', 'worker')}")
    process.start()
    return WorkerHandle(process, events_queue, control_queue)


def start_worker(project_path: str | Path, stage: str, overrides: list[str] | tuple[str, ...] = (),
                 device: str | None = None, resume: bool = False) -> WorkerHandle:
    """Train a stage in a child process (see the module docstring)."""
    return spawn(run, project_path=str(project_path), stage=stage, overrides=list(overrides),
                 device=device, resume=resume)


def _child_main(target, kwargs, events_queue, control_queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal belongs to the parent
    try:
        target(**kwargs, events=events_queue, control=control_queue)
    except BaseException:
        raise SystemExit(1) from None
