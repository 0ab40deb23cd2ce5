"""The parent's side of a worker process: its events, its control, its end. Torch-free.

Two kinds of child, one interface (`poll`, `events`, `stop`, `save`, `exitcode`, `pid`, `alive`,
`join`, `kill`):

- `QueueWorker`: a `multiprocessing` spawn child with two queues (chat, tools, preview). It
  belongs to the app: multiprocessing waits for it when the app exits.
- `TrainingProcess`: a training run, started with `subprocess.Popen` in a session of its own so
  that it can outlive the app ("leave running"; multiprocessing has no public way to let a child
  go). Its events come over a socket pair as JSON lines (the format of metrics.jsonl), control
  messages go the other way; `SocketChannel` is the child's end.

`poll` never hangs on a dead child: one that dies without a `finished` or `error` event
(SIGKILL, the OOM killer, a segfault) yields a synthesized `error` event naming its exit code.
"""

from __future__ import annotations

import json
import queue
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from engine import events as ev

TERMINAL_EVENTS = ("finished", "error")


class _Handle:
    """What both kinds share: terminal-event bookkeeping, the death event, iteration."""

    _done = False  # a terminal event was seen

    def _delivered(self, found: list[dict]) -> list[dict]:
        self._done = self._done or any(e.get("type") in TERMINAL_EVENTS for e in found)
        if not found and not self.alive() and not self._done:
            self._done = True
            found.append(_death_event(self.exitcode))
        return found

    def events(self, poll_interval: float = 0.1) -> Iterator[dict]:
        """Every event until the child has exited and everything it sent was delivered."""
        while True:
            batch = self.poll(poll_interval)
            yield from batch
            if not batch and not self.alive():
                while batch := self.poll(0):  # its last words, or the news of its death
                    yield from batch
                self.join()
                return

    def stop(self) -> None:
        self.control.put("stop")

    def save(self) -> None:
        self.control.put("save")


class QueueWorker(_Handle):
    """A multiprocessing child with an events queue and a control queue."""

    def __init__(self, process, events_queue, control_queue):
        self.process, self.events_queue, self.control = process, events_queue, control_queue

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def exitcode(self) -> int | None:
        """None while running; 0 after success; 1 after an error; -N when killed by signal N."""
        return self.process.exitcode

    def alive(self) -> bool:
        return self.process.is_alive()

    def poll(self, timeout: float = 0.1) -> list[dict]:
        """The events available within `timeout` seconds (see the module docstring for a death)."""
        return self._delivered(ev.drain(self.events_queue, timeout))

    def join(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()


class TrainingProcess(_Handle):
    """A `subprocess.Popen` child in its own session, talking JSON lines over a socket."""

    def __init__(self, popen: subprocess.Popen, sock: socket.socket):
        self.popen, self.control = popen, _SocketControl(sock)
        self._lines = _LineReader(sock)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def poll(self, timeout: float = 0.1) -> list[dict]:
        return self._delivered(self._lines.read(timeout))

    def join(self, timeout: float | None = None) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        self.popen.kill()


class _SocketControl:
    """The parent's `control.put(message)`; a child that is gone is not an error."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def put(self, message: Any) -> None:
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass


class _LineReader:
    """JSON objects, one a line, read from a socket within a timeout; bad lines are skipped."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buffer, self.closed = sock, b"", False

    def read(self, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        found: list[dict] = []
        while not self.closed and not found:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                break
            self._take(found)
        if not self.closed and select.select([self.sock], [], [], 0)[0]:
            self._take(found)
        return found

    def _take(self, found: list[dict]) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            self.closed = True
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append(item)


class SocketChannel:
    """The child's end of a TrainingProcess socket: `put(event)` while the parent listens, and
    `get_nowait()` for its control messages (raising queue.Empty, like a queue)."""

    def __init__(self, fd: int):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.buffer, self.parent_gone = b"", False

    def put(self, event: dict) -> None:
        if self.parent_gone:
            return
        try:
            self.sock.setblocking(True)
            self.sock.sendall(json.dumps(event, default=ev.jsonable).encode() + b"\n")
        except OSError:  # the app quit and left the run going: metrics.jsonl has every event
            self.parent_gone = True
        finally:
            self.sock.setblocking(False)

    def get_nowait(self) -> Any:
        while b"\n" not in self.buffer and not self.parent_gone:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.parent_gone = True
                break
            self.buffer += data
        if b"\n" not in self.buffer:
            raise queue.Empty
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _death_event(exitcode: int | None) -> dict:
    if exitcode is not None and exitcode < 0:
        how = f"was killed by {signal.Signals(-exitcode).name} (exit code {exitcode})"
    else:
        how = f"exited with code {exitcode} without reporting why"
    hint = " — out of memory?" if exitcode == -signal.SIGKILL else ""
    return {**ev.error(f"the worker process {how}{hint}", ""), "died": True}
