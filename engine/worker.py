"""The worker: run one stage of a project, emitting events and obeying control messages; and the
worker processes, the one door through which the app starts any of them.

`run(...)` is the single entry every way of training goes through: the app (in a process started
by `start_worker`), the CLI (`llmlab run`, in-process), torchrun (one process a rank). This
module imports no torch at module level: the app imports it to start its workers. The parent's
side (engine/processes.py has the handles):

    handle = start_worker("projects/demo", "pretrain", overrides=["pretrain.steps=100"])
    for ev in handle.events():          # blocks; ends once the child has exited and is drained
        ...                             # plain dicts (engine/events.py)
    handle.exitcode                     # 0 after `finished`; non-zero after `error` or a crash
    handle.stop() / handle.save()       # control messages (any time while it runs)

    start_chat(model_dir)               # engine.chat_worker: generate requests on handle.control
    start_tool("merge", adapter_dir=d)  # engine.task_worker: one `finished` or `error` event

Every child ignores Ctrl-C (the terminal's belongs to the parent), writes its stdout and stderr to
OUTPUT_LOG (output on the terminal would draw over the app) and sends its events to the parent
only while the parent lives. A training child (`python -m engine.worker`, see `main`) runs in a
session of its own, so it keeps going, writing metrics.jsonl, after the app quits or its
terminal closes; a later app (or `llmlab stop RUN`) reaches it through its run folder.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.chat_worker import chat
from engine.processes import QueueWorker, SocketChannel, TrainingProcess
from engine.project.fileio import disk_full
from engine.project.problems import Diverged
from engine.task_worker import tool

OUTPUT_LOG = Path(tempfile.gettempdir()) / "llmlab-worker.log"  # every worker child's stdout and stderr


def run(
    project_path: str | Path,
    stage: str,
    overrides: list[str] | tuple[str, ...] = (),
    events: Any = None,
    control: Any = None,
    device: str | None = None,
    resume: bool | str = False,
) -> dict:
    """Train `stage` of the project; returns the `finished` report. `resume`: True for the stage's
    newest run, or a run folder.

    `events`: any object with `put(event)` (a queue), or None; every event also goes to the
    run's metrics.jsonl. `control`: any object with `get_nowait()` raising `queue.Empty`
    (a queue of "stop" / "save"), or None. An exception is emitted as an `error` event with
    its traceback, then raised; a divergence has said so in its `finished` event and is raised.
    """
    emit = _Emitter(events)
    if os.environ.get("RANK", "0") == "0":  # torchrun's other ranks stay quiet
        emit(ev.phase("worker", f"worker started (pid {os.getpid()}): loading torch and the project"))
    try:
        from engine.setup import train_stage

        return train_stage(project_path, stage, list(overrides), emit, emit.open_log, _poller(control), device, resume)
    except Diverged:
        raise
    except BaseException as error:
        emit(ev.error_event(error))
        raise
    finally:
        emit.close()


class _Emitter:
    """Sends each event to the queue and, once the run directory is known, to metrics.jsonl (with
    the events sent before it was known)."""

    def __init__(self, events: Any):
        self.queue, self.log = events, None
        self.early: list[dict] | None = []  # until the log opens

    def open_log(self, path: Path) -> None:
        self.log = ev.EventLog(path)
        early, self.early = self.early or [], None
        for event in early:
            self.log.write(event)

    def __call__(self, event: dict) -> None:
        if self.queue is not None:
            self.queue.put(event)
        if self.early is not None:
            self.early.append(event)
        elif self.log is not None:
            try:
                self.log.write(event)
            except OSError as error:  # a full disk: say so once; the queue still hears the rest
                log, self.log = self.log, None
                with contextlib.suppress(OSError):
                    log.close()
                raise (disk_full(error, log.path) or error) from error

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


def spawn(target: Callable[..., Any], **kwargs) -> QueueWorker:
    """Start `target(**kwargs, events=queue, control=queue)` in a `spawn` child process.

    `target` must be importable by name (a module-level function). An exception in it makes
    the child exit with code 1 (the target is expected to have emitted its `error` event).
    """
    context = multiprocessing.get_context("spawn")
    events_queue, control_queue = context.Queue(), context.Queue()
    process = context.Process(
        target=_child_main,
        args=(target, kwargs, events_queue, control_queue),
        name=f"llmlab-{getattr(target, '__name__', 'worker')}",
    )
    process.start()
    return QueueWorker(process, events_queue, control_queue)


def start_worker(
    project_path: str | Path,
    stage: str,
    overrides: list[str] | tuple[str, ...] = (),
    device: str | None = None,
    resume: bool | str = False,
) -> TrainingProcess:
    """Train a stage in a process of its own session that may outlive this one (module docstring)."""
    ours, theirs = socket.socketpair()
    arguments = {
        "project_path": str(project_path),
        "stage": stage,
        "overrides": list(overrides),
        "device": device,
        "resume": str(resume) if isinstance(resume, Path) else resume,
    }
    with open(OUTPUT_LOG, "ab") as output:
        popen = subprocess.Popen(
            [sys.executable, "-m", "engine.worker", json.dumps(arguments), str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": _import_path()},
        )
    theirs.close()
    return TrainingProcess(popen, ours)


def start_sweep(
    project_path: str | Path, stage: str, grid: list[str], sets: list[str] = (), parallel: int = 1
) -> subprocess.Popen:
    """`llmlab sweep` (engine/sweep.py) in a process of its own session, so it outlives the app; its
    output goes to OUTPUT_LOG, its members' events to their run folders (the monitor follows them)."""
    command = [sys.executable, "-m", "engine", "sweep", str(project_path), "--stage", stage]
    command += [*(a for g in grid for a in ("--grid", g)), *(a for s in sets for a in ("--set", s))]
    with open(OUTPUT_LOG, "ab") as output:
        return subprocess.Popen(
            [*command, "--parallel", str(parallel)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": _import_path()},
        )


def _import_path() -> str:
    """This process's module search path, so the child imports the same engine (as spawn does)."""
    return os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path if not p or os.path.isdir(p)))


def start_chat(model_dir: str | Path, device: str | None = None) -> QueueWorker:
    """The chat worker for `model_dir` (engine.chat_worker): requests go on the handle's control queue."""
    return spawn(chat, model_dir=str(model_dir), device=device)


def start_tool(name: str, **kwargs) -> QueueWorker:
    """One of engine.task_worker's TOOLS in a child process, with its plain keyword arguments."""
    return spawn(tool, name=name, **kwargs)


def _child_main(target, kwargs, events_queue, control_queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal belongs to the parent
    quiet_output()
    try:
        target(**kwargs, events=ParentQueue(events_queue), control=control_queue)
    except BaseException:
        raise SystemExit(1) from None


def main(argv: list[str]) -> int:
    """The training child: `python -m engine.worker ARGUMENTS_JSON SOCKET_FD` (see start_worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    arguments, channel = json.loads(argv[0]), SocketChannel(int(argv[1]))
    try:
        run(**arguments, events=channel, control=channel)
    except BaseException:
        return 1
    return 0


def quiet_output(path: Path = OUTPUT_LOG) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to the end of `path`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (1, 2):
        os.dup2(fd, stream)
    os.close(fd)


class ParentQueue:
    """Forwards events to the parent's queue while the parent lives.

    A chat or tool child whose app has gone (killed, without ending it) stops sending: nobody
    reads the queue, its pipe would fill and the child's exit would wait forever to flush it.
    """

    def __init__(self, queue: Any):
        self.queue, self.parent = queue, os.getppid()

    def put(self, event: dict) -> None:
        if self.queue is not None and os.getppid() != self.parent:
            self.queue.cancel_join_thread()
            self.queue = None
        if self.queue is not None:
            self.queue.put(event)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
