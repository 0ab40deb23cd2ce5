"""Data off the hot path: packed batches made ahead of the training loop by a background thread.

`Prefetched(batches)` wraps an iterator with `state_dict()` / `load_state_dict()` (PackedBatches):
a daemon thread draws up to `depth` batches ahead into a bounded queue, so tokenizing a streaming
source and packing overlap the model's step (the Rust tokenizer and numpy release the GIL). Each
batch travels with the source's position after it, so `state_dict()` names the next batch the
*loop* takes, not the one the thread is making: a resume lands on the same batch as without
prefetching. An error in the thread is raised in the loop, with its own traceback. `close()`, or
dropping the Prefetched object at the end of a run, stops the thread, which never waits on a full
queue for longer than POLL_S; at the interpreter's exit the thread is stopped and joined first
(a daemon thread still inside the tokenizer or torch when Python finalizes aborts the process
with SIGABRT). On CUDA the batches' tensors are pinned, so the loop's
`non_blocking` copies overlap too.
"""

from __future__ import annotations

import copy
import queue
import threading
import weakref
from dataclasses import fields, replace

import torch

DEPTH = 4  # batches made ahead
POLL_S = 0.1  # how often a thread waiting on a full queue checks that it should stop
_END = object()  # the source ran out


class _Failed:
    """An exception raised in the thread, carried to the loop."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetched:
    """The batches of `source`, made by a background thread up to `depth` ahead."""

    def __init__(self, source, depth: int = DEPTH, pin_memory: bool | None = None):
        self.source, self.depth = source, depth
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self._position = copy.deepcopy(source.state_dict())  # where the next batch the loop takes starts
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __iter__(self):
        return self

    def __next__(self):
        if self._thread is None:
            self._start()
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # every later call ends too
            raise StopIteration
        if isinstance(item, _Failed):
            self._queue.put(item)
            raise item.error
        batch, self._position = item
        return batch

    @property
    def source_token_counts(self) -> list[int]:
        """Targets drawn from each source by the batches the loop has taken (not the thread)."""
        return list(self._position["source_token_counts"])

    def state_dict(self) -> dict:
        return copy.deepcopy(self._position)

    def load_state_dict(self, state: dict) -> None:
        """Stop the thread, move the source, and start again from `state` at the next batch."""
        self.close()
        self.source.load_state_dict(state)
        self._position = copy.deepcopy(state)

    def close(self) -> None:
        """Stop the background thread and drop what it made ahead (idempotent)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = self._queue = None
        self._stop = threading.Event()

    def _start(self) -> None:
        self._queue = queue.Queue(maxsize=self.depth)
        args = (self.source, self._queue, self._stop, self.pin_memory)
        self._thread = threading.Thread(target=_produce, args=args, name="llmlab-prefetch", daemon=True)
        weakref.finalize(self, _stop_and_join, self._stop, self._thread)  # the thread holds no reference to self
        self._thread.start()


def _stop_and_join(stop: threading.Event, thread: threading.Thread) -> None:
    """Tell the thread to stop and wait for it (it finishes the batch it is making)."""
    stop.set()
    if thread is not threading.current_thread() and thread.is_alive():
        thread.join()


def _produce(source, out: queue.Queue, stop: threading.Event, pin_memory: bool) -> None:
    """The thread: batches with the position after each, then _END or the error; until told to stop."""
    while not stop.is_set():
        try:
            batch = next(source)
            item = (_pinned(batch) if pin_memory else batch, copy.deepcopy(source.state_dict()))
        except StopIteration:
            item = _END
        except BaseException as error:  # the loop raises it
            item = _Failed(error)
        if not _put(out, item, stop) or not isinstance(item, tuple):
            return


def _pinned(batch):
    """The dataclass `batch` with its tensors in page-locked memory."""
    tensors = {f.name: getattr(batch, f.name) for f in fields(batch)}
    return replace(batch, **{k: v.pin_memory() for k, v in tensors.items() if isinstance(v, torch.Tensor)})


def _put(out: queue.Queue, item, stop: threading.Event) -> bool:
    """Put `item`, waiting while the queue is full; False if told to stop meanwhile."""
    while not stop.is_set():
        try:
            out.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False
