"""The monitor with keys only: a flood of events keeps the app responsive with few redraws, a
finished or still-running run reopens from its metrics.jsonl, a failing worker shows its traceback."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from textual_plotext import PlotextPlot

from engine.events import phase
from engine.project.run_lock import RunLock
from llmlab_tui.runner import TRAIN_JOB as JOB
from llmlab_tui.runner import QueueSource
from llmlab_tui.screens.monitor import MonitorScreen
from llmlab_tui.screens.quit import QuitScreen
from llmlab_tui.widgets.charts import ChartPanel
from tests.llmlab_tui.pilot_keys import app_on, run_palette, show, wait_for

STARTED = {
    "type": "started",
    "stage": "pretrain",
    "run_dir": "r",
    "device": "cpu",
    "precision": "fp32",
    "parameters": 1000,
    "start_step": 0,
    "total_steps": 20_000,
}
REPORT = {"wall_time_s": 3.0, "steps": 20_000, "tokens_seen": 1, "train_loss": 1.0, "eval_loss": 2.0, "bpb": 3.25}


def metrics(step: int) -> dict:
    return {
        "type": "metrics",
        "step": step,
        "loss": 5.0 / step,
        "lr": 1e-3,
        "grad_norm": 1.0,
        "tokens_per_s": 10.0,
        "tokens_seen": step,
        "eta_s": 1.0,
    }


async def open_monitor(pilot) -> MonitorScreen:
    return await show(pilot, "f4", MonitorScreen)


def fed(monitor: MonitorScreen) -> QueueSource:
    """A queue of events the monitor follows as its run's."""
    source = QueueSource()
    monitor.app.runner.start(JOB, source, monitor)
    return source


async def test_a_flood_of_events_is_coalesced_and_keys_still_work(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)

        def flood() -> None:
            source.queue.put(STARTED)
            for step in range(1, 20_001):
                source.queue.put(metrics(step))
            source.queue.put({"type": "finished", "status": "completed", "report": REPORT})
            source.close(0)

        threading.Thread(target=flood).start()
        await wait_for(pilot, lambda: monitor.view.step > 0)
        for tab in ("log", "summary", "charts"):  # keys are handled while events stream in
            await pilot.press(str(("charts", "samples", "log", "summary").index(tab) + 1))
            await wait_for(pilot, lambda tab=tab: monitor.query_one("#monitor-tabs").active == tab)
        await wait_for(pilot, lambda: monitor.view.state == "completed", tries=2000, delay=0.05)
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version, delay=0.1)
        assert monitor.view.series[("metrics", "loss")].count == 20_000
        assert len(monitor.view.series[("metrics", "loss")].x) < 600  # thinned for the chart
        assert monitor.view.version < 2_000  # batches, not one message per event
        # one redraw per batch at most, plus one per tab shown (only the pane on screen is drawn)
        assert monitor.redraws <= monitor.view.version + 1 + 3 and monitor.redraws < 200
        await pilot.press("4")  # the summary, drawn once shown
        await wait_for(pilot, lambda: "bits per byte    3.25" in str(monitor.query_one("#summary-text").render()))


def write_run(project: Path, name: str, events: list[dict]) -> Path:
    run = project / "runs" / name
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run / "metrics.jsonl"


async def test_reopening_shows_the_last_run_and_follows_one_still_running(projects_dir: Path):
    project = projects_dir / "alpha"
    write_run(
        project,
        "pretrain-20250101-000000",
        [STARTED, metrics(1), metrics(2), {"type": "finished", "status": "completed", "report": REPORT}],
    )
    live = write_run(project, "sft-20250102-000000", [{**STARTED, "stage": "sft"}, metrics(1)])
    app = app_on(project, projects_dir)
    with RunLock(live.parent):  # the process that trains it, as far as anyone can tell
        await _follow_the_live_run(app, live)


async def _follow_the_live_run(app, live: Path) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        await wait_for(pilot, lambda: monitor.view.step == 1, tries=600, delay=0.05)  # a busy machine is slow
        assert (monitor.view.stage, monitor.view.state) == ("sft", "running")
        with open(live, "a") as f:  # the process that still writes it goes on
            f.write(
                json.dumps(metrics(2))
                + "\n"
                + json.dumps({"type": "finished", "status": "stopped", "report": REPORT})
                + "\n"
            )
        await wait_for(pilot, lambda: monitor.view.state == "stopped", tries=600, delay=0.05)
        assert [x for x in monitor.view.series[("metrics", "loss")].points()[0]] == [1, 2]
        progress = lambda: str(monitor.query_one("#progress-text").render())
        await wait_for(pilot, lambda: "step 2/20,000" in progress(), tries=600, delay=0.05)


async def test_a_failing_run_shows_its_traceback_and_the_app_keeps_working(projects_dir: Path):
    project = projects_dir / "alpha"
    (project / "bad.jsonl").write_text("{this is not json\n")
    text = (project / "project.toml").read_text().replace('path = "roneneldan/TinyStories"', 'path = "bad.jsonl"')
    (project / "project.toml").write_text(text)
    app = app_on(project, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: monitor.view.state == "failed", tries=600, delay=0.1)
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version)
        summary = str(monitor.query_one("#summary-text").render())
        assert monitor.query_one("#monitor-tabs").active == "summary"
        assert "JSON parse error" in summary and "Traceback (most recent call last)" in summary
        await pilot.press("f3")  # still usable
        await wait_for(pilot, lambda: app.current_mode == "stages")
        await pilot.press("f4", "1")
        await wait_for(pilot, lambda: monitor.query_one("#monitor-tabs").active == "charts")


async def test_quitting_during_a_run_asks_then_stops_it_with_a_checkpoint(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), tries=600, delay=0.05)
        await pilot.press("escape")  # stay
        await wait_for(pilot, lambda: app.screen is monitor, tries=600, delay=0.05)
        await pilot.press("q", "s")
        await wait_for(pilot, lambda: not source.control.empty(), tries=600, delay=0.05)
        assert source.control.get_nowait() == "stop" and app.is_running  # it waits for the checkpoint
        source.queue.put({"type": "finished", "status": "stopped", "report": {}})
        source.close(0)
        await wait_for(pilot, lambda: not app.is_running, tries=600, delay=0.05)  # a busy machine is slow


async def test_the_palette_stops_a_run_from_another_screen(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.current_mode == "stages")
        await run_palette(pilot, "Stop run")
        await wait_for(pilot, lambda: not source.control.empty())
        assert app.current_mode == "monitor" and source.control.get_nowait() == "stop"
        source.close(0)


async def test_a_new_run_starts_while_the_finished_one_is_still_exiting(projects_dir: Path, monkeypatch):
    spawned = []

    def start_worker(project_path, stage, **kwargs):
        spawned.append(stage)
        source = QueueSource()
        source.pid = 4242
        return source

    monkeypatch.setattr("llmlab_tui.screens.monitor.start_worker", start_worker)
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        source.queue.put(STARTED)
        source.queue.put({"type": "finished", "status": "completed", "report": REPORT})
        await wait_for(pilot, lambda: monitor.view.state == "completed")
        assert app.runner.running(JOB)  # its worker has not exited yet
        await pilot.press("s")
        await wait_for(pilot, lambda: spawned == ["pretrain"])
        assert monitor.view.state == "running"
        await pilot.press("s")  # this one is running: refused
        assert spawned == ["pretrain"]


async def test_resume_waits_for_a_stopped_runs_process_to_let_go_of_its_folder(projects_dir: Path, monkeypatch):
    """`r` right after "stopped": the worker has written its end but still holds the run's lock
    while it closes; the resume waits for the lock instead of answering "nothing to resume"."""
    resumed = []

    def start_worker(project_path, stage, **kwargs):
        resumed.append(kwargs["resume"])
        source = QueueSource()
        source.pid = 4242
        return source

    monkeypatch.setattr("llmlab_tui.screens.monitor.start_worker", start_worker)
    project = projects_dir / "alpha"
    stopped = {"type": "finished", "status": "stopped", "report": REPORT}
    run = project / "runs" / "pretrain-20250101-000000"
    write_run(project, run.name, [{**STARTED, "run_dir": str(run)}, metrics(1), stopped])
    lock = RunLock(run).acquire()  # its process, on its way out
    app = app_on(project, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        await wait_for(pilot, lambda: monitor.view.state == "stopped")
        await pilot.press("r", "r")  # twice: one resume
        await pilot.pause(0.5)
        assert resumed == [] and not app._notifications  # waiting, without a word of "nothing to resume"
        lock.release()
        await wait_for(pilot, lambda: resumed == [str(run)], delay=0.05)
        assert monitor.view.state == "running"
        await pilot.pause(0.5)
        assert resumed == [str(run)]


async def test_a_torn_line_in_the_middle_of_metrics_jsonl_does_not_stop_the_monitor(projects_dir: Path):
    project = projects_dir / "alpha"
    path = write_run(project, "pretrain-20250101-000000", [STARTED, metrics(1)])
    with open(path, "a") as f:  # a full disk tore a line, then a resume appended after it
        f.write(
            '{"type": "metrics", "st\n'
            + json.dumps(metrics(2))
            + "\n"
            + json.dumps({"type": "finished", "status": "stopped", "report": REPORT})
            + "\n"
        )
    app = app_on(project, projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        await wait_for(pilot, lambda: monitor.view.state == "stopped")
        assert monitor.view.series[("metrics", "loss")].points()[0] == [1, 2]


async def test_the_summary_tab_of_an_sft_run_reads_in_words(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        evaluation = {"loss": 2.5, "ppl": 12.18, "truncated_total": 50.0}
        report = {"steps": 4, "eval_loss": 2.5, "bpb": None, "eval": evaluation}
        source.queue.put({**STARTED, "stage": "sft"})
        source.queue.put({"type": "finished", "status": "completed", "report": report})
        source.close(0)
        await wait_for(pilot, lambda: monitor.view.state == "completed")
        await pilot.press("4")
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version)
        text = str(monitor.query_one("#summary-text").render())
        assert "None" not in text and "bits per byte" not in text
        assert text.count("eval loss") == 1 and "eval perplexity" in text
        assert "training conversations cut at seq_len 50" in " ".join(text.split())


async def test_a_preparation_phase_shows_in_the_status_and_the_log_at_once(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        source.queue.put(phase("datasets", "tokenizing a.txt", 50, 200, "documents"))
        shown = "tokenizing a.txt: 50/200 documents (25%)"
        await wait_for(pilot, lambda: str(monitor.query_one("#progress-text").render()) == shown)
        await pilot.press("3")  # the log, drawn once shown
        await wait_for(pilot, lambda: shown in str(monitor.query_one("#log-text").render()))
        source.close(0)


def layers(step: int) -> dict:
    """A `layers` event of a 2-block model: block i's measures are step + i, 10^-(i+1), 2i + 1 and 1 + i."""
    rows = [
        {
            "layer": i,
            "grad_norm": step + i,
            "update_ratio": 10.0 ** -(i + 1),
            "act_rms": 2 * i + 1,
            "attn_entropy": 1 + i,
        }
        for i in range(2)
    ]
    return {"type": "layers", "step": step, "layers": rows}


async def test_a_runs_layer_events_are_charted_one_line_per_block(projects_dir: Path):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        monitor = await open_monitor(pilot)
        source = fed(monitor)
        for event in (STARTED, metrics(1), metrics(2)):
            source.queue.put(event)
        await wait_for(pilot, lambda: monitor.view.step == 2)
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version, delay=0.1)
        shown = lambda: {panel.heading.plain: panel for panel in monitor.query(ChartPanel) if panel.display}
        assert not [title for title in shown() if title.startswith("layer ")]  # no layer events, no layer charts

        for event in (layers(2), metrics(3), metrics(4), layers(4)):
            source.queue.put(event)
        await wait_for(pilot, lambda: monitor.view.step == 4 and monitor.view.layers)
        await wait_for(pilot, lambda: monitor.drawn == monitor.view.version, delay=0.1)
        charts = {title: panel for title, panel in shown().items() if title.startswith("layer ")}
        assert list(charts) == [
            "layer grad norm  0 1",
            "layer log10 |ΔW|/|W|  0 1",
            "layer act RMS  0 1",
            "layer attn entropy  0 1",
        ]
        plotted = lambda title: charts[title].query_one(PlotextPlot).plt._active.monitor
        grad_norm = plotted("layer grad norm  0 1")
        assert grad_norm.x == [[2, 4], [2, 4]] and grad_norm.y == [[2.0, 4.0], [3.0, 5.0]]
        assert plotted("layer log10 |ΔW|/|W|  0 1").y == [[-1.0, -1.0], [-2.0, -2.0]]
        legend = charts["layer grad norm  0 1"].heading
        colours = {legend.plain[span.start : span.end]: str(span.style) for span in legend.spans}
        assert colours["0"] != colours["1"]  # each block named in its line's colour
        source.close(0)
