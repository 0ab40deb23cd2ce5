"""Write an SVG screenshot of every screen of the app (README's "The app" section).

    python -m llmlab_tui.screenshots PROJECT [--out docs/screenshots] [--size 80x24] [--train pretrain.steps=30 ...]

Drives the app headless (80×24 unless --size says otherwise) with App.run_test, as the tests
do: each registered screen in turn, the monitor on the project's newest run, the chat with one
streamed reply from the newest model, the stages screen's dataset preview (of the SFT stage), the
inspect screen's attention (on the head that looks most at the previous token), logit lens and
ablation table of the newest model.
`--train` first runs the pretrain stage with those overrides in a worker (so the monitor and the
chat have something to show).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from llmlab_tui.app import SCREENS, LabApp
from llmlab_tui.screens.inspect import InspectScreen
from llmlab_tui.screens.preview import PreviewScreen

SIZE = (80, 24)
PREVIEW_STAGE = "sft"
WAIT_S = 120  # the longest wait for a worker (chat model loading, preview, an inspect view)
INSPECT_PROMPT = "Mira lives in the town by the river. Mira lives in"


async def _until(pilot, condition, seconds: float = WAIT_S) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await pilot.pause(0.1)


async def capture(project: Path, out: Path, prompt: str, size: tuple[int, int] = SIZE) -> list[Path]:
    """Visit every screen of the app on `project`; return the SVGs written under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    app, written = LabApp(project, projects_dir=project.parent), []
    async with app.run_test(size=size) as pilot:
        for name, entry in SCREENS.items():
            await pilot.press(entry.key)
            await _until(pilot, lambda name=name: app.current_mode == name and getattr(app.screen, "project", True), 10)
            if name == "chat" and app.screen.models:
                await pilot.press(*prompt, "enter")
                await _until(pilot, lambda: len(app.screen.history) == 2 or app.screen.query(".chat-error"))
            if name == "inspect" and app.screen.models:
                await _attention(pilot, app.screen)
            await pilot.pause(0.5)  # the monitor's redraw timer, the footer's keys
            written.append(Path(app.save_screenshot(f"{name}.svg", str(out))))
            if name == "stages":
                app.screen.query_one("#stage-select").value = PREVIEW_STAGE
                await pilot.pause(0.2)
                await pilot.press("ctrl+o")
                await _until(
                    pilot,
                    lambda: (
                        isinstance(app.screen, PreviewScreen)
                        and not str(app.screen.query_one("#preview-text").render()).startswith("building")
                    ),
                )
                written.append(Path(app.save_screenshot("preview.svg", str(out))))
                await pilot.press("escape")
            if name == "inspect" and app.screen.models:
                for key, view, file in (("2", "lens", "inspect-lens"), ("4", "ablate", "inspect-ablation")):
                    await _view(pilot, app.screen, key, view)
                    written.append(Path(app.save_screenshot(f"{file}.svg", str(out))))
    return written


async def _attention(pilot, screen: InspectScreen) -> None:
    """Read INSPECT_PROMPT, then move to the head with the largest share on the previous token."""
    await pilot.press("end", "ctrl+u", *INSPECT_PROMPT, "enter")
    await _until(pilot, lambda: "attention" in screen.reports and screen.running is None)
    report = screen.shown_report()
    if report is not None:
        best = max(report["heads"], key=lambda h: h["previous"])
        await pilot.press(*["right_square_bracket"] * best["layer"], *["right"] * best["head"])


async def _view(pilot, screen: InspectScreen, key: str, view: str) -> None:
    """Show a view and wait for its report (ablation is started with Ctrl+R)."""
    await pilot.press(key)
    if view == "ablate":
        await pilot.press("ctrl+r")
    await _until(pilot, lambda: view in screen.reports and screen.running is None)
    await pilot.pause(0.3)


def train_first(project: Path, overrides: list[str]) -> None:
    """Run the pretrain stage with `overrides` in a worker, printing its end."""
    from engine.worker import start_worker

    for event in start_worker(project, "pretrain", overrides).events():
        if event["type"] in ("finished", "error"):
            print(event["type"], event.get("message", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--train", nargs="*", metavar="KEY=VALUE", help="train pretrain first with these --set lines")
    parser.add_argument("--prompt", default="The answer is")
    parser.add_argument("--size", default="80x24", help="the terminal's COLUMNSxROWS")
    args = parser.parse_args()
    size = tuple(int(n) for n in args.size.lower().split("x"))
    if args.train is not None:
        train_first(args.project, args.train)
    for path in asyncio.run(capture(args.project.resolve(), args.out, args.prompt, size)):
        print(path)


if __name__ == "__main__":
    main()
