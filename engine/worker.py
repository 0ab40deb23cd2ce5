"""The worker: run one stage of a project, emitting events and obeying control messages; and the
worker processes, the one door through which the app starts any of them.

`run(...)` is the single entry every way of training goes through: the app (in a child process
started by `start_worker`), the CLI (`llmlab run`, in-process), torchrun (one process a rank).
This module imports no torch at module level: the app imports it to start its workers. The
parent's side:

    handle = start_worker("projects/demo", "pretrain", overrides=["pretrain.steps=100"])
    for ev in handle.events():          # blocks; ends once the child has exited and is drained
        ...                             # plain dicts (engine/events.py)
    handle.exitcode                     # 0 after `finished`; non-zero after `error` or a crash
    handle.stop() / handle.save()       # control messages (any time while it runs)

    start_chat(model_dir)               # engine.chat_worker: generate requests on handle.control
    start_tool("merge", adapter_dir=d)  # engine.task_worker: one `finished` or `error` event

Every child ignores Ctrl-C (the terminal's belongs to the parent), writes its stdout and stderr to
OUTPUT_LOG (output on the terminal would draw over the app) and sends its events to the parent
only while the parent lives (ParentQueue). A training child runs in its own session, so it keeps
going, writing metrics.jsonl, after the app quits or its terminal closes.

`events()` never hangs on a dead child: if the process dies without a `finished` or `error`
event (SIGKILL, the OOM killer, a segfault), it yields a synthesized `error` event naming the
exit code. `poll(timeout)` gives the events available now, for a caller with its own loop.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from engine import events as ev
from engine.chat_worker import chat
from engine.task_worker import tool

TERMINAL_EVENTS = ("finished", "error")
OUTPUT_LOG = Path(tempfile.gettempdir()) / "llmlab-worker.log"  # every worker child's stdout and stderr


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
        emit(ev.error_event(error))
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
        found = ev.drain(self.events_queue, timeout)
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


def spawn(target: Callable[..., Any], own_session: bool = False, **kwargs) -> WorkerHandle:
    """Start `target(**kwargs, events=queue, control=queue)` in a `spawn` child process.

    `target` must be importable by name (a module-level function). An exception in it makes
    the child exit with code 1 (the target is expected to have emitted its `error` event).
    `own_session`: the child leaves the parent's session (see the module docstring).
    """
    context = multiprocessing.get_context("spawn")
    events_queue, control_queue = context.Queue(), context.Queue()
    process = context.Process(target=_child_main, args=(target, kwargs, events_queue, control_queue, own_session),
                              name=f"llmlab-{getattr(target, '__name__', 'worker')}")
    process.start()
    return WorkerHandle(process, events_queue, control_queue)


def start_worker(project_path: str | Path, stage: str, overrides: list[str] | tuple[str, ...] = (),
                 device: str | None = None, resume: bool = False) -> WorkerHandle:
    """Train a stage in a child process of its own session (see the module docstring)."""
    return spawn(run, own_session=True, project_path=str(project_path), stage=stage, overrides=list(overrides),
                 device=device, resume=resume)


def start_chat(model_dir: str | Path, device: str | None = None) -> WorkerHandle:
    """The chat worker for `model_dir` (engine.chat_worker): requests go on the handle's control queue."""
    return spawn(chat, model_dir=str(model_dir), device=device)


def start_tool(name: str, **kwargs) -> WorkerHandle:
    """One of engine.task_worker's TOOLS in a child process, with its plain keyword arguments."""
    return spawn(tool, name=name, **kwargs)


def _child_main(target, kwargs, events_queue, control_queue, own_session: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal belongs to the parent
    if own_session:
        os.setsid()  # no controlling terminal: no SIGHUP when the app's terminal goes away
    quiet_output()
    try:
        target(**kwargs, events=ParentQueue(events_queue), control=control_queue)
    except BaseException:
        raise SystemExit(1) from None


def quiet_output(path: Path = OUTPUT_LOG) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the end of `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)


class ParentQueue:
    """Forwards events to the parent's queue while the parent lives.

    Once the parent has exited (the app quit and left the run going), nobody reads the queue: its
    pipe fills and the child's exit would wait forever to flush it. Events then reach only
    metrics.jsonl, and the queue is told not to hold the exit up.
    """

    def __init__(self, queue: Any):
        self.queue, self.parent = queue, os.getppid()

    def put(self, event: dict) -> None:
        if self.queue is not None and os.getppid() != self.parent:
            self.queue.cancel_join_thread()
            self.queue = None
        if self.queue is not None:
            self.queue.put(event)
