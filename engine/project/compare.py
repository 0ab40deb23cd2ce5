"""Runs side by side: each run's measures as series, its final measures, and the settings that differ.

A run's metrics.jsonl gives the series: every `metrics` event's numbers (its `loss` as
`train_loss`) and every `eval` event's (its `loss` as `eval_loss`, `bpb` as it is, the rest as
`eval_<name>`), each against the step, the tokens seen and the wall time since the run's first
event. The lm-eval scores of the run's final model (`llmlab eval`, engine.project.eval_results)
join its final measures as `<task> <metric>` ("hellaswag acc"), after the series' measures. A run
folder's project.toml is the configuration it trained with; `config_diff` keeps only
the dotted fields whose values are not the same in every run. Torch-free: the app's Compare uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.events import read_events
from engine.project import eval_results
from engine.project.files import read_toml
from engine.project.layout import FINAL, METRICS_FILE, PROJECT_FILE
from engine.project.problems import LLMLabError, Problem
from engine.project.runs import run_state

AXES = ("step", "tokens", "time")
_NOT_MEASURES = {"type", "time", "step", "tokens_seen", "eta_s", "step_time", "shares"}
# Shown first, in this order, when a run has them; the rest follow by name.
_FIRST = ("train_loss", "eval_loss", "bpb", "eval_ppl", "lr", "grad_norm", "tokens_per_s")
MISSING = "—"


@dataclass
class RunSeries:
    """One run's measures: {measure: [(step, tokens seen, seconds since start, value)]}, and the
    lm-eval scores of its final model ({"<task> <metric>": value})."""

    run_dir: Path
    points: dict[str, list[tuple[int, int, float, float]]] = field(default_factory=dict)
    state: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.name

    def measures(self) -> list[str]:
        return order_measures(self.points)

    def series(self, measure: str, axis: str = "step") -> tuple[list[float], list[float]]:
        """(xs, values) of `measure` against `axis` (one of AXES); empty when the run lacks it."""
        if axis not in AXES:
            raise LLMLabError(Problem("axis", f"{axis!r} is not one of {', '.join(AXES)}"))
        index = AXES.index(axis)
        found = self.points.get(measure, [])
        return [p[index] for p in found], [p[3] for p in found]

    def final(self) -> dict[str, float]:
        """The last value of each measure, and the scores."""
        return {measure: found[-1][3] for measure, found in self.points.items() if found} | self.scores


def order_measures(names) -> list[str]:
    """Measure names, the usual ones first (see _FIRST); bits per byte wherever there is a loss (it
    compares runs with different tokenizers)."""
    names = set(names)
    if any(name.endswith("loss") for name in names):
        names.add("bpb")
    return [m for m in _FIRST if m in names] + sorted(names - set(_FIRST))


def final_measures(runs: list[RunSeries]) -> list[str]:
    """What a table of the runs' finals lists: their measures in order (order_measures), then their
    lm-eval scores by name."""
    return order_measures({m for run in runs for m in run.points}) + sorted({s for run in runs for s in run.scores})


def read_run(run_dir: str | Path) -> RunSeries:
    """A run folder's series from its metrics.jsonl (refused, naming the folder, when it has none)."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise LLMLabError(Problem("run", f"{run_dir}: not a run folder (no {METRICS_FILE})"))
    run = RunSeries(run_dir, state=run_state(run_dir)["state"], scores=eval_results.measures(run_dir / FINAL))
    start, step, tokens = None, 0, 0
    for ev in read_events(path):
        kind, when = ev.get("type"), ev.get("time")
        if start is None and isinstance(when, (int, float)):
            start = when
        if kind not in ("metrics", "eval"):
            continue
        step = ev.get("step", step)
        tokens = ev.get("tokens_seen", tokens)
        seconds = round(when - start, 3) if isinstance(when, (int, float)) else 0.0
        for name, value in ev.items():
            if name in _NOT_MEASURES or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            run.points.setdefault(_measure_name(kind, name), []).append((step, tokens, seconds, float(value)))
    return run


def _measure_name(kind: str, name: str) -> str:
    if kind == "metrics":
        return "train_loss" if name == "loss" else name
    return {"loss": "eval_loss", "bpb": "bpb"}.get(name, f"eval_{name}")


def run_config(run_dir: str | Path) -> dict:
    """The settings a run trained with, flattened to dotted keys ({} when its folder has no project.toml)."""
    file = Path(run_dir) / PROJECT_FILE
    return flatten(read_toml(file)) if file.is_file() else {}


def flatten(data: dict, prefix: str = "") -> dict:
    """{"pretrain": {"lr": 1e-3}} → {"pretrain.lr": 1e-3}; lists stay values."""
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def config_diff(configs: list[dict]) -> dict[str, list]:
    """{dotted key: [value in each config, None where absent]} for the keys that differ."""
    keys = sorted({key for config in configs for key in config})
    diff = {}
    for key in keys:
        values = [config.get(key) for config in configs]
        if any(value != values[0] for value in values[1:]):
            diff[key] = values
    return diff


def comparison(run_dirs: list[str | Path]) -> dict:
    """What `llmlab compare --json` prints: each run's state and final measures, and the config diff."""
    runs = [read_run(path) for path in run_dirs]
    return {
        "runs": [{"run": str(run.run_dir), "state": run.state, "final": run.final()} for run in runs],
        "measures": final_measures(runs),
        "differences": config_diff([run_config(run.run_dir) for run in runs]),
    }


def format_value(value) -> str:
    """A measure or setting as a table shows it."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
