"""A run knows it is alive: the process that trains it holds an OS lock on `<run>/run.lock`.

`fcntl.flock` locks belong to an open file and end with the process that holds them, however it
ends (exit, SIGKILL, the OOM killer): no heartbeat to go stale, no pid that may be reused. The
file also says who holds it (pid, host, start time) so that a refusal can name them. Torch-free:
the app asks `holder(run_dir)` for every run it lists.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from engine.project.layout import LOCK_FILE
from engine.project.problems import LLMLabError


class RunLock:
    """The lock of one run folder, held from `acquire()` until `release()` or the process ends."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock, or raise LLMLabError naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = holder(self.path.parent)
            raise LLMLabError(
                f"{self.path.parent.name}: {describe(who)}; wait for it, or stop it "
                f"with `llmlab stop {self.path.parent}`"
            ) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file ends the lock; the file stays, it names no one
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(run_dir: str | Path) -> dict | None:
    """{pid, host, started} of the process training this run now; None when none is."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _record(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe(who: dict | None) -> str:
    """'trained right now by pid N on HOST since HH:MM' (or as much of it as is known)."""
    if not who:
        return "trained right now by another process"
    since = time.strftime("%H:%M", time.localtime(who["started"])) if who.get("started") else "?"
    return f"trained right now by pid {who.get('pid', '?')} on {who.get('host', '?')} since {since}"


def _record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
