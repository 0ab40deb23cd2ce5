"""`llmlab run PROJECT --stage STAGE`: train a stage headless, with a progress line.

The run goes through `engine.worker.run` in this process (also under torchrun). Ctrl-C asks for
a checkpoint and a clean stop; a second Ctrl-C interrupts at once. A run that diverged exits
with status 3 (a problem the command line itself reports: 2).
"""

from __future__ import annotations

import queue
import signal
import sys

from engine.commands import add_overrides
from engine.device import DEVICES
from engine.events import phase_text
from engine.project import STAGES
from engine.project.problems import Diverged

DIVERGED_EXIT = 3


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="train one stage of a project")
    parser.add_argument("project", help="project directory or its project.toml")
    parser.add_argument("--stage", required=True, choices=STAGES)
    add_overrides(parser, "pretrain.steps=20")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue a stopped, died or diverged run (default: the stage's newest)",
    )
    parser.add_argument("--device", choices=DEVICES, help="force a device (default: cuda when present)")
    parser.set_defaults(func=main)


def main(args) -> int:
    from engine.worker import run

    control: queue.SimpleQueue = queue.SimpleQueue()
    previous = signal.signal(signal.SIGINT, _stop_on_first_interrupt(control))
    try:
        run(
            args.project,
            args.stage,
            args.sets,
            events=Progress(sys.stdout),
            control=control,
            device=args.device,
            resume=args.resume,
        )
    except Diverged:
        return DIVERGED_EXIT  # its finished line said why and what to try
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def _stop_on_first_interrupt(control: queue.SimpleQueue):
    def handler(signum, frame):
        print("\nstopping: saving a checkpoint (Ctrl-C again to interrupt now)", file=sys.stderr, flush=True)
        control.put("stop")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return handler


class Progress:
    """Events → text: a live status line on a terminal, else one line every ~5% of the steps."""

    def __init__(self, stream):
        self.stream, self.live = stream, stream.isatty()
        self.total, self.every, self._line_open = 0, 1, False

    def put(self, ev: dict) -> None:
        kind = ev["type"]
        if kind == "metrics":
            self._metrics(ev)
        elif kind == "phase":
            self._phase(ev)
        elif kind == "started":
            self._print(self._started(ev))
        elif kind in _LINES:
            self._print(_LINES[kind](ev))

    def _metrics(self, ev: dict) -> None:
        line = (
            f"step {ev['step']}/{self.total}  loss {ev['loss']:.4f}  lr {ev['lr']:.2e}  "
            f"{ev['tokens_per_s']:,.0f} tok/s  ETA {_duration(ev['eta_s'])}"
        )
        if self.live:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._line_open = True
        elif ev["step"] % self.every == 0 or ev["step"] == self.total:
            self._print(line)

    def _phase(self, ev: dict) -> None:
        """A preparation phase in one line: live on a terminal, else only where it starts and ends."""
        if self.live and ev.get("done") is not None:
            self.stream.write("\r\033[K" + phase_text(ev))
            self.stream.flush()
            self._line_open = ev["done"] != ev.get("total")
            if not self._line_open:
                self.stream.write("\n")
        elif ev.get("done") is None or ev["done"] == ev.get("total"):
            self._print(phase_text(ev))

    def _print(self, text: str) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _started(self, ev: dict) -> str:
        self.total = ev["total_steps"]
        self.every = max(1, self.total // 20)
        how = "resuming at step {start_step}" if ev["resumed"] else "{parameters:,} parameters"
        processes = f", {ev['world_size']} processes" if ev["world_size"] > 1 else ""
        return f"{ev['stage']}: {ev['run_dir']} on {ev['device']} ({ev['precision']}{processes}), " + how.format(**ev)


def _eval_line(ev: dict) -> str:
    measures = "  ".join(
        f"{k} {v:.4f}" for k, v in ev.items() if k not in ("type", "time", "step") and isinstance(v, float)
    )
    return f"eval @ {ev['step']}: {measures}"


def _finished_line(ev: dict) -> str:
    if ev["status"] == "diverged":
        return f"diverged: {ev['message']}"
    report = ev["report"]
    loss = report.get("eval_loss") if report.get("eval_loss") is not None else report.get("train_loss")
    return (
        f"{ev['status']} after {report['steps']} steps, {report['tokens_seen']:,} tokens, "
        f"{_duration(report['wall_time_s'])}; loss {loss if loss is None else f'{loss:.4f}'}"
    )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


_LINES = {
    "eval": _eval_line,
    "sample": lambda ev: "\n".join(f"sample @ {ev['step']}: {s['prompt']}{s['text']!r}" for s in ev["samples"]),
    "checkpoint": lambda ev: f"checkpoint: {ev['path']}",
    "log": lambda ev: f"{ev['level']}: {ev['message']}",
    "finished": _finished_line,
}
