"""`llmlab bench tui`: how fast the app starts, what a user feels when typing `llmlab` over SSH.

Each measure runs in a fresh Python process, several times (the median is shown): the bare
interpreter's start, the time of `import llmlab_tui.app`, and the time from starting the process
to its first frame arriving on a terminal (a pseudo-terminal of 100x30 the bench reads: the first
output holding a text of the screen, MARKERS), with no project and with the demo project open;
with the demo also the time until every field of its form is editable (the form's rows are drawn
as text in the first frame and get their editors just after, widgets/forms.py). It also checks
that no heavy library (torch, transformers, ...) was loaded, and notes which screen showed and
how many widgets it held once editable. Textual's `Ready` event is not the paint on a terminal:
it is posted when the first frame is laid out, and the frame is written only once Textual's
start-up batch has ended and the screen's queue reached it (a few tenths of a second later when
heavy work was queued behind it).

The processes start with Python's bytecode cached, as every start after the first one (and every
pip install) does: a warm-up start fills a temporary cache (PYTHONPYCACHEPREFIX), so a
PYTHONDONTWRITEBYTECODE in the environment does not add the compiling of every module to each start.

The app's own bench, so the engine never imports the app: `llmlab bench tui` reaches `main` through
llmlab_tui/__main__.py, and it needs nothing but the standard library and the app.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from engine.bench.common import cpu_name

DEMO = Path(__file__).resolve().parents[1] / "projects" / "demo"
HEAVY = ("torch", "transformers", "datasets", "peft")
TARGET_SECONDS = 0.5
REFERENCES = {"textual_bare": False, "textual_form": True}  # plain_paint, without / with the project's fields
ROUNDS = 3
SIZE = (100, 30)  # the pseudo-terminal's columns and rows
BARE_TEXT = "a bare Textual app"
# text each first frame holds, and no output before it: its arrival on the terminal is the first paint
MARKERS = {"projects": "Projects", "form": "positional_encoding", "bare": BARE_TEXT}
PAINT_TIMEOUT_S = 60.0
TRAIN_STEPS = 300

IMPORT_CODE = "import time; t = time.perf_counter(); import llmlab_tui.app; print(time.perf_counter() - t)"
PAINT_CODE = "import sys; from llmlab_tui.bench import first_paint; first_paint(*sys.argv[1:])"
PLAIN_CODE = PAINT_CODE.replace("first_paint", "plain_paint")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmlab bench tui", description="the app's start: import time and time to the first painted screen"
    )
    parser.add_argument("--project", type=Path, default=DEMO, help="the project opened in the second measure")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"fresh processes per measure (default {ROUNDS})")
    parser.add_argument(
        "--train-steps",
        type=int,
        default=TRAIN_STEPS,
        help=f"pretraining steps trained headless and from the app (default {TRAIN_STEPS}; 0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser


def first_paint(project: str, report: str) -> None:
    """Run in a fresh process on a terminal: start the app, note when its first frame was made and
    when every field of its screen was editable, write that to the file `report`, and go on until
    killed (an app that quits at once may never write the frame the bench waits for)."""
    from llmlab_tui.app import LabApp, project_dir
    from llmlab_tui.screens.base import FormScreen

    class Probe(LabApp):
        CSS_PATH = Path(sys.modules[LabApp.__module__].__file__).parent / LabApp.CSS_PATH  # relative to app.py

        async def on_ready(self) -> None:
            painted = {"heavy": [name for name in HEAVY if name in sys.modules]}
            if isinstance(self.screen, FormScreen):  # its fields are drawn as text first: wait for the editors
                await self.screen.editable.wait()
            painted.update(
                editable_at=time.monotonic(), screen=type(self.screen).__name__, widgets=len(self.screen.query("*"))
            )
            _write_report(report, painted)

    Probe(project_dir(Path(project)).resolve() if project else None).run()


def _write_report(report: str, painted: dict) -> None:
    """Write what a paint process saw, whole or not at all (the bench reads it as soon as it is there)."""
    partial = Path(report).with_suffix(".partial")
    partial.write_text(json.dumps(painted))
    partial.replace(report)


def plain_paint(project: str, report: str) -> None:
    """Run in a fresh process on a terminal: Textual's own cost, the references the app's start is
    read against. No project: a bare App (a line and a Footer); a project: its F2 fields as plain
    Textual widgets (a label and an Input / Select / Checkbox a row, in a scroll, with a Footer),
    none of the app's logic, CSS or screens."""
    from textual.app import App
    from textual.containers import Horizontal, VerticalScroll
    from textual.widgets import Checkbox, Footer, Input, Label, Select, Static

    specs = []
    if project:
        from engine.project import load_project
        from llmlab_tui.screens.architecture import tokenizer_specs
        from llmlab_tui.widgets.forms import dataclass_specs

        loaded = load_project(Path(project))
        specs = tokenizer_specs(loaded) + dataclass_specs(loaded.model)

    def editor(spec):
        if spec.choices:
            options = [(str(o), o) for o in dict.fromkeys([*spec.choices, spec.value])]
            return Select(options, value=spec.value, allow_blank=False, compact=True)
        if isinstance(spec.value, bool):
            return Checkbox(value=spec.value, compact=True)
        return Input(str(spec.value), compact=True)

    class Plain(App):
        CSS = ".row { height: 1; } .row Label { width: 26; } .row > * { max-width: 44; }"

        def compose(self):
            if not specs:
                yield Static(BARE_TEXT)
            with VerticalScroll():
                for spec in specs:
                    with Horizontal(classes="row"):
                        yield Label(spec.name)
                        yield editor(spec)
            yield Footer()

        def on_ready(self) -> None:
            painted = {"editable_at": time.monotonic(), "heavy": []}
            painted.update(screen="plain Textual", widgets=len(self.screen.query("*")))
            _write_report(report, painted)

    Plain().run()


def _first_paint(project: Path | None, env: dict, marker: str, code: str = PAINT_CODE) -> tuple[float, float, dict]:
    """Start `code` for `project` in a fresh process on a pseudo-terminal of SIZE: the seconds
    until the terminal received its first frame (the first output holding `marker`, a text of the
    screen), the seconds until every field was editable, and what the process reported."""
    terminal, child_end = os.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-paint-") as folder:
        report = Path(folder) / "painted.json"
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(project or ""), str(report)],
            stdin=child_end,
            stdout=child_end,
            stderr=child_end,
            env={**env, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(child_end)
        deadline = start + PAINT_TIMEOUT_S
        try:
            shown_at, output = _read_terminal(terminal, marker.encode(), deadline)
            while not report.is_file() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            child.kill()
            child.wait()
            os.close(terminal)
        if shown_at is None or not report.is_file():
            raise RuntimeError(f"no first frame from {code!r}; its terminal showed:\n{output[-2000:]!r}")
        painted = json.loads(report.read_text())
    return shown_at - start, painted["editable_at"] - start, painted


def _marker(project: Path | None, without: str) -> str:
    """The text whose arrival is the first paint: the form's with a project, else `without`'s."""
    return MARKERS["form" if project else without]


def _read_terminal(terminal: int, marker: bytes, deadline: float) -> tuple[float | None, bytes]:
    """Read the terminal's output until `marker` arrives (when it did) or the process ends (None)."""
    output = b""
    while time.monotonic() < deadline:
        if not select.select([terminal], [], [], deadline - time.monotonic())[0]:
            break
        try:
            data = os.read(terminal, 1 << 16)
        except OSError:  # the process ended: its side of the terminal is closed
            break
        if not data:
            break
        tail = output[-len(marker) :]
        output += data
        if marker in tail + data:
            return time.monotonic(), output
    return None, output


def cached_bytecode_env(cache: str) -> dict:
    """This environment with Python's bytecode written to and read from `cache`."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": cache}


def _python(code: str, *args: str, env: dict | None = None) -> tuple[float, str]:
    """Wall seconds of `python -c code args...` and its last output line."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed in a subprocess:\n{done.stderr[-2000:]}")
    seconds, lines = time.perf_counter() - start, done.stdout.strip().splitlines()
    return seconds, lines[-1] if lines else ""


def run_bench(project: Path | None, rounds: int) -> dict:
    """Median seconds of each measure over `rounds` fresh processes, and the heavy modules seen."""
    keys = ("interpreter", "import", "first_paint", "first_paint_project", "editable_project", *REFERENCES)
    measures = {key: [] for key in keys}
    heavy, screens = set(), {}
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-tui-") as cache:
        env = cached_bytecode_env(cache)
        for opened in (None, project):  # the warm-up: fills the bytecode cache, not timed
            _first_paint(opened, env, _marker(opened, "projects"))
        for _ in range(rounds):
            measures["interpreter"].append(_python("pass", env=env)[0])
            measures["import"].append(float(_python(IMPORT_CODE, env=env)[1]))
            for key, opened in (("first_paint", None), ("first_paint_project", project)):
                seconds, editable, painted = _first_paint(opened, env, _marker(opened, "projects"))
                measures[key].append(seconds)
                if opened:
                    measures["editable_project"].append(editable)
                heavy.update(painted["heavy"])
                screens[key] = {"screen": painted["screen"], "widgets": painted["widgets"]}
            for key, opened in REFERENCES.items():
                shown = project if opened else None
                seconds, _, painted = _first_paint(shown, env, _marker(shown, "bare"), PLAIN_CODE)
                measures[key].append(seconds)
                screens[key] = {"screen": painted["screen"], "widgets": painted["widgets"]}
    result = {
        "bench": "tui",
        "rounds": rounds,
        "project": str(project) if project else None,
        "heavy_modules": sorted(heavy),
        "first_screens": screens,
        "target_seconds": TARGET_SECONDS,
        "machine": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M"),
        },
    }
    result.update({f"{key}_s": statistics.median(values) for key, values in measures.items() if values})
    result["rounds_s"] = measures
    return result


def main(argv: list[str] | None = None) -> int:
    """`llmlab bench tui [--project DIR] [--rounds N] [--json]`."""
    args = parser().parse_args(argv)
    project = args.project if args.project and args.project.exists() else None
    result = run_bench(project, args.rounds)
    if args.train_steps > 0:
        from llmlab_tui.bench_training import compare

        result["training"] = compare(DEMO, args.train_steps)
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ["python -c pass", f"{result['interpreter_s']:.3f} s"],
        ["import llmlab_tui.app", f"{result['import_s']:.3f} s"],
        ["start to first paint (projects)", f"{result['first_paint_s']:.3f} s"],
    ]
    if project:
        rows.append([f"start to first paint ({project.name})", f"{result['first_paint_project_s']:.3f} s"])
        rows.append([f"start to every field editable ({project.name})", f"{result['editable_project_s']:.3f} s"])
    rows.append(["reference: a bare Textual app", f"{result['textual_bare_s']:.3f} s"])
    if project:
        widgets = result["first_screens"]["textual_form"]["widgets"]
        label = f"reference: its F2 fields in plain Textual ({widgets} widgets)"
        rows.append([label, f"{result['textual_form_s']:.3f} s"])
    m = result["machine"]
    width, height = SIZE
    print(f"tui start, median of {args.rounds} fresh processes each, on a {width}x{height} terminal, bytecode cached")
    print(_table(["", "seconds"], rows))
    print(f"heavy modules loaded: {', '.join(result['heavy_modules']) or 'none'}")
    screens = {key: shown for key, shown in result["first_screens"].items() if key not in REFERENCES}
    shown = [f"{s['screen']} ({s['widgets']} widgets)" for s in screens.values()]
    print(f"first screens, once editable: {', '.join(shown)}")
    print(f"cpu: {m['cpu']}, {m['cpu_count']} cores, load {' '.join(map(str, m['load_average']))}, {m['date']}")
    worst = max(result["first_paint_s"], result["first_paint_project_s"] if project else 0.0)
    verdict = "ok" if worst < TARGET_SECONDS else f"above the {TARGET_SECONDS:g} s target"
    print(f"first paint: {worst:.2f} s ({verdict})")
    if "training" in result:
        print(_training_lines(result["training"]))
    return 0


def _training_lines(training: dict) -> str:
    """The throughput of the demo's pretraining headless and from the app, and their ratio."""
    rows = [
        [how, f"{run['tokens_per_s']:,.0f}", f"{run['train_seconds']:.1f} s", " ".join(map(str, run["load_average"]))]
        for how, run in (("llmlab run", training["headless"]), ("from the app, 120x40", training["app"]))
    ]
    verdict = "ok" if training["ratio"] >= training["target_ratio"] else f"below the {training['target_ratio']} target"
    return "\n".join(
        [
            f"\ntraining the demo's pretraining for {training['steps']} steps (median tokens/s after the first tenth)",
            _table(["", "tokens/s", "steps took", "load after"], rows),
            f"app / headless: {training['ratio']:.2f} ({verdict}); the app redrew the Monitor "
            f"{training['app'].get('redraws', 0)} times",
        ]
    )


def _table(headers: list[str], rows: list[list]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells
    )
