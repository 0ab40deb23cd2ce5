"""The monitor's model of a run: events folded into series, progress, log, report; series thinned."""

from __future__ import annotations

import json
import math

import pytest

from engine import events as ev
from engine.project import STAGES
from llmlab_tui.run_view import CHARTS, RunView, Series, duration, report_lines, spread

STARTED = {
    "type": "started",
    "stage": "pretrain",
    "run_dir": "/p/runs/pretrain-1",
    "device": "cpu",
    "precision": "fp32",
    "parameters": 28832,
    "start_step": 0,
    "total_steps": 8,
    "resumed": False,
}


def metrics(step: int, **extra) -> dict:
    return {
        "type": "metrics",
        "time": 0.0,
        "step": step,
        "loss": 6.0 - step / 10,
        "lr": 1e-3,
        "grad_norm": 1.5,
        "tokens_per_s": 100.0,
        "tokens_seen": 128 * step,
        "eta_s": 65.0,
        **extra,
    }


def test_series_thins_itself_and_keeps_the_last_point():
    series = Series(cap=100)
    for step in range(10_000):
        series.add(step, step * 2.0)
    xs, ys = series.points()
    assert len(xs) < 200 + 1 and xs[0] == 0 and (xs[-1], ys[-1]) == (9999, 19998.0)
    assert xs == sorted(xs) and all(y == 2 * x for x, y in zip(xs, ys))


def test_events_fold_into_charts_progress_samples_log_and_report():
    view = RunView()
    shares = {"a.txt": {"share": 0.75, "weight": 3.0}, "b.txt": {"share": 0.25, "weight": 1.0}}
    view.apply(
        [
            STARTED,
            metrics(1),
            metrics(2, shares=shares),
            {"type": "eval", "step": 2, "loss": 5.5, "bpb": 7.9},
            {"type": "sample", "step": 2, "samples": [{"prompt": "", "text": "the cat"}]},
            {"type": "log", "level": "warning", "message": "loss spike"},
        ]
    )
    assert view.state == "running" and view.version == 1
    assert view.progress_text() == "step 2/8 · 256 tokens · ETA 1m 05s"
    loss = view.chart_lines(CHARTS[0])
    assert [(label, xs, ys) for label, xs, ys in loss] == [("train", [1, 2], [5.9, 5.8]), ("eval", [2], [5.5])]
    assert view.chart_lines(next(c for c in CHARTS if c.title == "reward")) == []
    assert view.shares == shares and view.samples == [{"prompt": "", "text": "the cat"}]
    assert list(view.log)[-1] == ("warning", "loss spike")
    report = {
        "wall_time_s": 72.4,
        "steps": 8,
        "tokens_seen": 1024,
        "train_loss": 4.99619,
        "eval_loss": 5.0059,
        "bpb": 7.3077,
        "eval": {"ppl": 149.3},
    }
    view.apply([{"type": "finished", "status": "completed", "report": report}])
    assert view.state == "completed" and view.version == 2
    assert report_lines(view.report) == [
        ("wall time", "1m 12s"),
        ("steps", "8"),
        ("tokens", "1,024"),
        ("train loss", "4.996"),
        ("eval loss", "5.006"),
        ("bits per byte", "7.308"),
        ("eval perplexity", "149.3"),
    ]


def test_an_error_event_fails_the_run_with_its_traceback():
    view = RunView()
    view.apply([STARTED, metrics(1), {"type": "error", "message": "ValueError: boom", "traceback": "Traceback ..."}])
    assert view.state == "failed" and view.error == ("ValueError: boom", "Traceback ...")
    assert list(view.log)[-1] == ("error", "ValueError: boom")


def test_rlhf_measures_fill_their_charts():
    view = RunView()
    view.apply([STARTED, metrics(1, reward=0.5, kl=0.01), metrics(2, reward=0.7, kl=0.02)])
    titles = [chart.title for chart in CHARTS if view.chart_lines(chart)]
    assert titles == ["loss", "learning rate", "grad norm", "tokens/s", "reward", "KL"]


def test_a_run_reads_back_from_its_metrics_file(tmp_path):
    lines = [STARTED, metrics(1), {"type": "finished", "status": "stopped", "report": {"steps": 1}}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines) + '{"type": "metr')
    view = RunView.from_file(tmp_path / "metrics.jsonl")
    assert (view.state, view.step, view.stage) == ("stopped", 1, "pretrain")


def test_durations():
    assert [duration(s) for s in (0.4, 12, 187, 3725)] == ["0s", "12s", "3m 07s", "1h 02m"]


PROMPTS = [{"prompt": "say 7", "answer": "7"}] * 20
POLICY = dict(batch_size=2, mini_batch_size=2, max_new_tokens=3, reward_rules=["exact_match"], kl_coef=0.05)
TINY_RUNS = {  # stage: (rows, stage settings): two steps, evaluated at the second
    "pretrain": ([{"text": "1 2 3 4 5 6 7 8 9 0 " * 4}] * 20, dict(batch_size=2, seq_len=16)),
    "sft": ([{"prompt": "pick 3", "completion": "say 3"}] * 20, dict(batch_size=2, seq_len=32)),
    "dpo": ([{"prompt": "pick 1", "chosen": "1", "rejected": "8"}] * 20, dict(batch_size=2, seq_len=32)),
    "ppo": (PROMPTS, POLICY),
    "grpo": (PROMPTS, dict(POLICY, group_size=2)),  # kl_coef > 0: GRPO has a KL only with a reference
}


def layers(step: int, blocks: int) -> dict:
    """A `layers` event of `blocks` blocks whose measures say which block and step they are."""
    rows = [
        {"layer": i, "grad_norm": step + i, "update_ratio": 10.0 ** -(i + 1), "act_rms": 2.0 * i, "attn_entropy": 1.0}
        for i in range(blocks)
    ]
    return {"type": "layers", "time": 0.0, "step": step, "layers": rows}


def test_layer_events_fill_one_chart_per_measure_with_a_line_per_block():
    view = RunView()
    assert not [chart for chart in CHARTS if chart.per_layer and view.chart_lines(chart)]
    view.apply([STARTED, metrics(1), metrics(2), layers(2, 2), metrics(3), metrics(4), layers(4, 2)])
    charts = {chart.layer_measure: view.chart_lines(chart) for chart in CHARTS if chart.per_layer}
    assert list(charts) == ["grad_norm", "update_ratio", "act_rms", "attn_entropy"]
    assert charts["grad_norm"] == [("0", [2, 4], [2.0, 4.0]), ("1", [2, 4], [3.0, 5.0])]
    assert charts["update_ratio"] == [("0", [2, 4], [-1.0, -1.0]), ("1", [2, 4], [-2.0, -2.0])]  # log10
    assert charts["act_rms"] == [("0", [2, 4], [0.0, 0.0]), ("1", [2, 4], [2.0, 2.0])]
    assert view.chart_lines(CHARTS[0])[0][1] == [1, 2, 3, 4]  # the loss chart is untouched


def test_a_deep_model_draws_eight_blocks_spread_from_first_to_last():
    view = RunView()
    view.apply([STARTED, layers(2, 12), {**layers(4, 12), "layers": [{"layer": 0, "update_ratio": 0.0}]}])
    grad_norm, update_ratio, *_ = (chart for chart in CHARTS if chart.per_layer)
    assert [label for label, _, _ in view.chart_lines(grad_norm)] == ["0", "2", "3", "5", "6", "8", "9", "11"]
    assert spread(list(range(3)), 8) == [0, 1, 2]
    _, steps, values = view.chart_lines(update_ratio)[0]  # a ratio of 0 has no logarithm: not drawn
    assert steps == [2, 4] and values[0] == -1.0 and math.isnan(values[1])


@pytest.mark.parametrize("stage", STAGES)
def test_a_tiny_run_of_each_stage_feeds_every_line_of_its_charts(stage, tmp_path):
    from engine.objectives import build_objective
    from engine.trainer import Trainer
    from tests.engine.objectives.helpers import objective_context

    rows, settings = TINY_RUNS[stage]
    ctx = objective_context(
        tmp_path, stage, rows, steps=2, eval_every=2, eval_batches=1, warmup_steps=0, layer_stats=True, **settings
    )
    events: list[dict] = []
    Trainer(ctx, build_objective(ctx), events.append).run()
    view = RunView()
    view.apply(events)
    charts = [chart for chart in CHARTS if stage in chart.stages]
    blocks = {str(i) for i in range(ctx.project.model.n_layers)}  # a per-layer chart's lines
    for chart in charts:
        drawn = {label for label, steps, values in view.chart_lines(chart) if steps and all(map(math.isfinite, values))}
        expected = blocks if chart.per_layer else {line.label for line in chart.lines if stage in line.stages}
        assert drawn == expected, chart.title
    assert [chart for chart in CHARTS if view.chart_lines(chart)] == charts


def test_an_sft_report_shows_each_measure_once_in_words():
    report = {
        "steps": 10,
        "eval_loss": 2.5,
        "bpb": None,  # sft measures no bits per byte
        "eval": {"loss": 2.5, "ppl": 12.18, "truncated_total": 50.0},
    }
    assert report_lines(report) == [
        ("steps", "10"),
        ("eval loss", "2.5"),
        ("eval perplexity", "12.18"),
        ("training conversations cut at seq_len", "50"),
    ]


def test_policy_and_preference_fractions_read_as_percentages():
    report = {"eval": {"reward": 0.5, "truncated": 0.25, "accuracy": 0.875, "kl_new": 0.01}}
    assert report_lines(report) == [
        ("eval preference accuracy", "87.5%"),
        ("eval reward", "0.5"),
        ("eval replies cut at max_new_tokens", "25.0%"),
        ("eval kl new", "0.01"),
    ]


def test_preparation_phases_show_at_once_and_progress_updates_their_log_line():
    view = RunView()
    view.apply([ev.phase("worker", "worker started (pid 7): loading torch and the project")])
    assert view.progress_text() == "worker started (pid 7): loading torch and the project"
    view.apply([ev.phase("datasets", "tokenizing a.txt", 0, 200, "documents")])
    view.apply([ev.phase("datasets", "tokenizing a.txt", 100, 200, "documents"), ev.log("a warning", "warning")])
    view.apply([ev.phase("datasets", "tokenizing a.txt", 200, 200, "documents")])
    assert [message for _, message in view.log] == [
        "worker started (pid 7): loading torch and the project",
        "tokenizing a.txt: 100/200 documents (50%)",  # updated in place until another line came
        "a warning",
        "tokenizing a.txt: 200/200 documents (100%)",
    ]
    assert view.progress_text() == "tokenizing a.txt: 200/200 documents (100%)"
    view.apply([STARTED, metrics(1)])
    assert view.phase == "" and view.progress_text().startswith("step 1/")
