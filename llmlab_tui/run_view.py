"""What the monitor shows of a run, folded from its events (live from a worker, or read back from
metrics.jsonl): chart series, progress, the latest samples, the log, the realized dataset shares,
the final report or the error. A stage with `layer_stats` also sends `layers` events: each measure
of each block is a series of its own, charted one line per block (at most LAYER_LINES of them).

Plain Python, no Textual: the monitor draws from a RunView, tests feed it events directly.
Series are thinned as they grow, so a chart never holds more than ~2 × MAX_POINTS points.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engine.events import phase_text, read_events
from engine.project import STAGES

MAX_POINTS = 300
LOG_LINES = 500
LAYER_LINES = 8  # the blocks a per-layer chart draws, spread from the first to the last


@dataclass(frozen=True)
class Line:
    """A chart line: its label, the event type and key it reads, and the stages that emit it."""

    label: str
    kind: str  # "metrics" (each logged step) or "eval"
    key: str
    stages: tuple[str, ...] = STAGES


@dataclass(frozen=True)
class Chart:
    """A chart of the monitor: its title and its lines, or, for a per-layer chart, the measure of
    the `layers` events it draws one line per block of (`log10`: of its logarithm)."""

    title: str
    lines: tuple[Line, ...] = ()
    layer_measure: str = ""  # a key of each block's row in a `layers` event
    log10: bool = False

    @property
    def per_layer(self) -> bool:
        return bool(self.layer_measure)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages whose runs draw this chart (a per-layer one: every stage, with layer_stats)."""
        if self.per_layer:
            return STAGES
        return tuple(stage for stage in STAGES if any(stage in line.stages for line in self.lines))


SUPERVISED, POLICY = ("pretrain", "sft", "dpo"), ("ppo", "grpo")

# Every chart a stage may fill, with the keys its objective emits (engine/objectives/*.py);
# the monitor shows those with points.
CHARTS = (
    Chart("loss", (Line("train", "metrics", "loss"), Line("eval", "eval", "loss", SUPERVISED))),
    Chart("learning rate", (Line("lr", "metrics", "lr"),)),
    Chart("grad norm", (Line("grad norm", "metrics", "grad_norm"),)),
    Chart("tokens/s", (Line("tokens/s", "metrics", "tokens_per_s"),)),
    Chart("reward", (Line("train", "metrics", "reward", POLICY), Line("eval", "eval", "reward", POLICY))),
    Chart("KL", (Line("kl", "metrics", "kl", POLICY),)),  # GRPO: only with kl_coef > 0
    Chart("entropy", (Line("entropy", "metrics", "entropy", POLICY),)),
    Chart(
        "DPO rewards",
        (
            Line("chosen", "metrics", "rewards/chosen", ("dpo",)),
            Line("rejected", "metrics", "rewards/rejected", ("dpo",)),
        ),
    ),
    Chart(
        "DPO accuracy",
        (Line("train", "metrics", "rewards/accuracy", ("dpo",)), Line("eval", "eval", "accuracy", ("dpo",))),
    ),
    Chart(
        "DPO margin",
        (Line("train", "metrics", "rewards/margin", ("dpo",)), Line("eval", "eval", "margin", ("dpo",))),
    ),
    # engine/inspection/training.py, at the eval cadence when the stage sets layer_stats
    # (titles short enough for the legend to name 8 blocks at 80 columns, two charts a row)
    Chart("layer grad norm", layer_measure="grad_norm"),
    Chart("layer log10 |ΔW|/|W|", layer_measure="update_ratio", log10=True),
    Chart("layer act RMS", layer_measure="act_rms"),
    Chart("layer attn entropy", layer_measure="attn_entropy"),  # bits
)


class Series:
    """(step, value) points; past 2 × cap points every other one is dropped (the last always kept)."""

    def __init__(self, cap: int = MAX_POINTS) -> None:
        self.cap, self.stride, self.count = cap, 1, 0
        self.x: list[float] = []
        self.y: list[float] = []
        self.last: tuple[float, float] | None = None

    def add(self, x: float, y: float) -> None:
        if self.count % self.stride == 0:
            self.x.append(x)
            self.y.append(y)
            if len(self.x) >= 2 * self.cap:
                self.x, self.y, self.stride = self.x[::2], self.y[::2], self.stride * 2
        self.count += 1
        self.last = (x, y)

    def points(self) -> tuple[list[float], list[float]]:
        if self.last is not None and (not self.x or self.x[-1] != self.last[0]):
            return self.x + [self.last[0]], self.y + [self.last[1]]
        return self.x, self.y


@dataclass
class RunView:
    """A run as its events so far describe it; `version` grows with every change."""

    stage: str = ""
    run_dir: str = ""
    state: str = "idle"  # idle, or a run state: running | completed | stopped | failed | diverged | died
    detail: str = ""  # device, precision, parameters
    phase: str = ""  # what the run prepares now (its last `phase` event), until its first step
    step: int = 0
    total_steps: int = 0
    tokens_seen: int = 0
    eta_s: float | None = None
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    layers: dict[str, dict[int, Series]] = field(default_factory=dict)  # measure → block → series
    samples: list[dict] = field(default_factory=list)
    sample_step: int | None = None
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))  # (level, message)
    shares: dict[str, dict] = field(default_factory=dict)
    report: dict | None = None
    error: tuple[str, str] | None = None  # message, traceback
    checkpoint: str | None = None  # where a resume would continue (stopped, died, diverged runs)
    version: int = 0
    _phase_said: tuple | None = None  # ((name, message), line) of the last phase logged

    @classmethod
    def from_file(cls, metrics: Path) -> RunView:
        view = cls(run_dir=str(metrics.parent))
        view.apply(read_events(metrics))
        return view

    def settle(self, state: dict) -> None:
        """Take the run's state as engine.project.runs.run_state tells it (the same for every view)."""
        self.state = state["state"]
        self.checkpoint = str(state["checkpoint"]) if state.get("checkpoint") else None
        if self.state == "died":
            where = f"resume from {Path(self.checkpoint).name} with r" if self.checkpoint else "no checkpoint to resume"
            self.log.append(
                (
                    "error",
                    f"the process training this run is gone without a word (killed, out of "
                    f"memory, or its machine lost): {where}",
                )
            )
        self.version += 1

    def apply(self, events: list[dict]) -> None:
        for event in events:
            handler = _HANDLERS.get(event.get("type"))
            if handler is not None:
                handler(self, event)
        self.version += 1

    def _phase(self, event: dict) -> None:
        """A preparation phase: the status line shows it; the log gets one line a phase, updated
        in place as its progress advances."""
        key, text = (event.get("name"), event.get("message")), phase_text(event)
        last = self._phase_said
        if event.get("done") is not None and last and last[0] == key and self.log and self.log[-1] == ("info", last[1]):
            self.log[-1] = ("info", text)
        else:
            self.log.append(("info", text))
        self._phase_said, self.phase, self.state = (key, text), text, "running"

    def _started(self, event: dict) -> None:
        self.stage, self.run_dir, self.state = event.get("stage", ""), event.get("run_dir", ""), "running"
        self.total_steps, self.step = event.get("total_steps") or 0, event.get("start_step") or 0
        self.report, self.error = None, None
        self.detail = f"{event.get('device')} {event.get('precision')} · {event.get('parameters', 0):,} params"
        resumed = " (resumed)" if event.get("resumed") else ""
        self.log.append(("info", f"started {self.stage}{resumed} on {self.detail} → {self.run_dir}"))

    def _metrics(self, event: dict) -> None:
        self.state, self.phase = "running", ""
        self.step = event.get("step", self.step)
        self.tokens_seen = event.get("tokens_seen", self.tokens_seen)
        self.eta_s = event.get("eta_s")
        self.shares = event.get("shares") or self.shares
        self._points("metrics", event)

    def _points(self, kind: str, event: dict) -> None:
        step = event.get("step", self.step)
        for key, value in event.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "time"):
                self.series.setdefault((kind, key), Series()).add(step, float(value))

    def _eval(self, event: dict) -> None:
        self._points("eval", event)
        measures = ", ".join(
            f"{k} {v:.4g}"
            for k, v in event.items()
            if k not in ("type", "time", "step") and isinstance(v, (int, float))
        )
        self.log.append(("info", f"eval at step {event.get('step')}: {measures}"))

    def _layers(self, event: dict) -> None:
        step = event.get("step", self.step)
        for row in event.get("layers", []):
            for key, value in row.items():
                if key != "layer" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.layers.setdefault(key, {}).setdefault(row["layer"], Series()).add(step, float(value))

    def _sample(self, event: dict) -> None:
        self.samples, self.sample_step = event.get("samples", []), event.get("step")

    def _checkpoint(self, event: dict) -> None:
        kind = "final checkpoint" if event.get("final") else "checkpoint"
        self.log.append(("info", f"{kind} at step {event.get('step')}: {event.get('path')}"))

    def _log(self, event: dict) -> None:
        self.log.append((event.get("level", "info"), event.get("message", "")))

    def _finished(self, event: dict) -> None:
        self.state = event.get("status", "completed")
        self.report = event.get("report") or {}
        self.eta_s = 0.0
        if self.state == "diverged":
            self.error = (event.get("message", "the run diverged"), "")
            self.log.append(("error", event.get("message", "the run diverged")))
        else:
            self.log.append(("info", f"run {self.state}"))

    def _error(self, event: dict) -> None:
        self.state = "died" if event.get("died") else "failed"  # died: the process vanished without a word
        self.error = (event.get("message", ""), event.get("traceback", ""))
        self.log.append(("error", event.get("message", "")))

    def chart_lines(self, chart: Chart) -> list[tuple[str, list[float], list[float]]]:
        """The chart's lines that have points: (label, steps, values); a per-layer chart's are labelled
        by their block's index."""
        if chart.per_layer:
            return self._layer_lines(chart)
        found = [(line.label, self.series.get((line.kind, line.key))) for line in chart.lines]
        return [(label, *series.points()) for label, series in found if series is not None]

    def _layer_lines(self, chart: Chart) -> list[tuple[str, list[float], list[float]]]:
        blocks = self.layers.get(chart.layer_measure, {})
        lines = []
        for layer in spread(sorted(blocks), LAYER_LINES):
            steps, values = blocks[layer].points()
            if chart.log10:  # a ratio of 0 (a frozen block) or none has no logarithm: not drawn
                values = [math.log10(v) if v > 0 else math.nan for v in values]
            lines.append((str(layer), steps, values))
        return lines

    def progress_text(self) -> str:
        if self.phase and self.state == "running":
            return self.phase
        parts = [
            f"step {self.step:,}/{self.total_steps:,}" if self.total_steps else f"step {self.step:,}",
            f"{self.tokens_seen:,} tokens",
        ]
        if self.eta_s is not None and self.state == "running":
            parts.append(f"ETA {duration(self.eta_s)}")
        return " · ".join(parts)


_HANDLERS = {
    "phase": RunView._phase,
    "started": RunView._started,
    "metrics": RunView._metrics,
    "eval": RunView._eval,
    "layers": RunView._layers,
    "sample": RunView._sample,
    "checkpoint": RunView._checkpoint,
    "log": RunView._log,
    "finished": RunView._finished,
    "error": RunView._error,
}

# The report's usual keys, in order, with their labels; the stage's own measures follow.
REPORT_LABELS = {
    "wall_time_s": "wall time",
    "steps": "steps",
    "tokens_seen": "tokens",
    "train_loss": "train loss",
    "eval_loss": "eval loss",
    "bpb": "bits per byte",
    # the held-out measures of each objective (engine/objectives/*.py `evaluate`)
    "eval.ppl": "eval perplexity",
    "eval.accuracy": "eval preference accuracy",
    "eval.margin": "eval reward margin",
    "eval.reward": "eval reward",
    "eval.truncated": "eval replies cut at max_new_tokens",
    "eval.truncated_total": "training conversations cut at seq_len",
}
REPEATED = {"eval.loss": "eval_loss", "eval.bpb": "bpb"}  # the eval table repeats these two
SHARES = {"eval.accuracy", "eval.truncated"}  # fractions, shown as percentages


def spread(items: list, count: int) -> list:
    """At most `count` of `items`, evenly spaced, the first and the last always among them."""
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def duration(seconds: float) -> str:
    """`1h 02m`, `3m 07s`, `12s`."""
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def report_lines(report: dict) -> list[tuple[str, str]]:
    """The finished report as (label, value) rows: the usual measures first, then the stage's own;
    a measure the stage does not take (None: no bits per byte for sft) and repeats are left out."""
    flat = {key: value for key, value in _flatten(report).items() if value is not None}
    for repeat, key in REPEATED.items():
        if key in flat:
            flat.pop(repeat, None)
    rows = [(label, _number(key, flat.pop(key))) for key, label in REPORT_LABELS.items() if key in flat]
    return rows + [(key.replace(".", " ").replace("_", " "), _number(key, value)) for key, value in flat.items()]


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(key: str, value) -> str:
    if key == "wall_time_s" and isinstance(value, (int, float)):
        return duration(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if key in SHARES:
        return f"{value:.1%}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)  # a count sent as a float (truncated_total)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
