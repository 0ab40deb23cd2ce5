"""The event vocabulary between a worker and whoever watches it (the app, the CLI, metrics.jsonl).

An event is a plain dict of builtins with a `type` and a `time` (seconds since the epoch), so it
pickles across a spawn queue and serialises as one JSON line. Torch-free: the app imports this.

| type         | fields besides type and time                                                    |
| ------------ | ------------------------------------------------------------------------------- |
| `started`    | stage, run_dir, device, precision, world_size, parameters, start_step,          |
|              | total_steps, resumed                                                            |
| `metrics`    | step, loss, lr, grad_norm, tokens_per_s, tokens_seen, step_time, eta_s,         |
|              | [mfu, gpu_memory_gb on CUDA], shares {source: {share, weight}} when there are   |
|              | sources, + the objective's own per-step measures (e.g. `accuracy`)               |
| `eval`       | step + the objective's held-out measures (pretrain: loss, ppl, bpb)             |
| `layers`     | step, layers: [{layer, grad_norm, update_ratio, act_rms, attn_entropy}], at the |
|              | eval cadence when the stage sets layer_stats (engine/inspection/training.py)    |
| `sample`     | step, samples: [{prompt, text}]                                                 |
| `checkpoint` | step, path, final, pruned (the step directories retention deleted)              |
| `log`        | level (info / warning / error), message                                         |
| `phase`      | name (one of PHASES), message, [done, total, unit: progress where it has a       |
|              | length, e.g. documents tokenized]: a run's preparation, before `started`         |
| `finished`   | status (completed / stopped / diverged), run_dir, report {wall_time_s, steps,   |
|              | tokens_seen, train_loss, eval_loss, bpb, + the stage's own final measures};     |
|              | diverged: message (what went non-finite, what to try)                           |
| `error`      | message, traceback (formatted); problem: true when the input was refused        |
|              | (an LLMLabError: the message says it all); died: true when the process vanished |
| `token`      | text (chat: one streamed piece of a reply)                                      |
| `reply`      | text + whatever the chat worker reports about the finished reply (tokens,       |
|              | tokens_per_s, stopped, token_probs: engine/chat_worker.py)                      |

Control messages travel the other way: the strings `stop` (checkpoint, then finish with status
`stopped`) and `save` (checkpoint now); a dict with that `type` is accepted too. `drain` is how a
watcher reads a queue of events: what arrives within a timeout, in one list.
"""

from __future__ import annotations

import json
import queue
import time
import traceback as tb
from collections.abc import Callable
from pathlib import Path

from engine.project.problems import LLMLabError

EVENT_TYPES = (
    "phase",
    "started",
    "metrics",
    "eval",
    "layers",
    "sample",
    "checkpoint",
    "log",
    "finished",
    "error",
    "token",
    "reply",
)
# A run's preparation, in the order a run goes through them (resume only when it resumes), then
# an evaluation's (engine.evaluation): the model, lm-eval's tasks, the requests scored.
PHASES = ("worker", "tokenizer", "model", "datasets", "resume", "first step", "tasks", "requests")
LOG_LEVELS = ("info", "warning", "error")
FINISH_STATUSES = ("completed", "stopped", "diverged")
CONTROL_MESSAGES = ("stop", "save")


def event(type: str, **fields) -> dict:
    """A new event of `type` stamped with the current time."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; expected one of {', '.join(EVENT_TYPES)}")
    return {"type": type, "time": time.time(), **fields}


def log(message: str, level: str = "info") -> dict:
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LOG_LEVELS)}")
    return event("log", level=level, message=message)


def phase(name: str, message: str, done: int | None = None, total: int | None = None, unit: str = "") -> dict:
    """A preparation phase begun (`done` None) or advanced (`done` of `total` `unit`s)."""
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
    progress = {} if done is None else {"done": done, "total": total, "unit": unit}
    return event("phase", name=name, message=message, **progress)


def phase_text(ev: dict) -> str:
    """One line for a phase event: `tokenizing corpus.txt: 1,000/2,700 documents (37%)`."""
    done, total = ev.get("done"), ev.get("total")
    if done is None:
        return ev["message"]
    unit = f" {ev['unit']}" if ev.get("unit") else ""
    if not total:
        return f"{ev['message']}: {done:,}{unit}"
    return f"{ev['message']}: {done:,}/{total:,}{unit} ({done / total:.0%})"


class Phases:
    """Emits `phase` events (a run's rank 0, an evaluation); progress at most every PROGRESS_SECONDS, and its ends."""

    PROGRESS_SECONDS = 0.25

    def __init__(self, emit: Callable[[dict], None] | None):
        self.emit, self.name, self.last, self.said = emit, "worker", 0.0, None

    def begin(self, name: str, message: str) -> None:
        self.name = name
        if self.emit is not None:
            self.emit(phase(name, message))

    def progress(self, message: str, done: int, total: int | None, unit: str) -> None:
        now = time.monotonic()
        early = 0 < done != total and now - self.last < self.PROGRESS_SECONDS
        if self.emit is None or early or self.said == (message, done):
            return
        self.last, self.said = now, (message, done)
        self.emit(phase(self.name, message, done, total, unit))


def finished(status: str, report: dict, **fields) -> dict:
    if status not in FINISH_STATUSES:
        raise ValueError(f"unknown finish status {status!r}; expected one of {', '.join(FINISH_STATUSES)}")
    return event("finished", status=status, report=report, **fields)


def error(message: str, traceback: str, problem: bool = False) -> dict:
    return event("error", message=message, traceback=traceback, problem=problem)


def error_event(exception: BaseException) -> dict:
    """The `error` event for the exception being handled: its readable message and its traceback
    (an LLMLabError's message is its problem lines, marked `problem`: a person needs no traceback
    for it; any other exception's message is prefixed by its type)."""
    if isinstance(exception, LLMLabError):
        return error(str(exception), tb.format_exc(), problem=True)
    return error(f"{type(exception).__name__}: {exception}", tb.format_exc())


def control_type(message) -> str:
    """`stop` or `save` from a control message given as a string or as a dict with a `type`."""
    kind = message.get("type") if isinstance(message, dict) else message
    if kind not in CONTROL_MESSAGES:
        raise ValueError(f"unknown control message {message!r}; expected one of {', '.join(CONTROL_MESSAGES)}")
    return kind


def drain(events, timeout: float) -> list:
    """The items of `events` (a queue.Queue or a multiprocessing queue) that arrive within `timeout`
    seconds: waits for the first one, then takes whatever else is there without waiting."""
    found = []
    try:
        found.append(events.get(timeout=timeout))
        while True:
            found.append(events.get_nowait())
    except queue.Empty:
        pass
    return found


class EventLog:
    """Appends events to a JSON-lines file, one flushed line each, so a reader sees them live.

    Opening cuts a torn last line (a crash or a full disk mid-write) so that the file stays a
    sequence of whole lines: the next event never lands glued to half of an old one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_torn_line(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, ev: dict) -> None:
        self._file.write(json.dumps(ev, default=jsonable) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_torn_line(path: Path) -> None:
    """Truncate `path` after its last newline (nothing to do for a missing or whole file)."""
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, 2)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            end = size
            while end > 0:
                start = max(0, end - 65536)
                f.seek(start)
                newline = f.read(end - start).rfind(b"\n")
                if newline >= 0:
                    f.truncate(start + newline + 1)
                    return
                end = start
            f.truncate(0)
    except FileNotFoundError:
        return


class Events(list):
    """The events of a metrics.jsonl; `skipped` counts the lines that were not whole JSON objects."""

    skipped: int = 0


def read_events(path: str | Path) -> Events:
    """Every event in a metrics.jsonl; a bad line anywhere (torn by a crash, half-written on a full
    disk) is skipped and counted in `.skipped`, never raised."""
    events = Events()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if isinstance(event, dict):
                events.append(event)
            elif line.strip():
                events.skipped += 1
    return events


def jsonable(value):
    """Last resort for JSON: numbers that are not builtins (numpy, 0-d tensors) become floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
