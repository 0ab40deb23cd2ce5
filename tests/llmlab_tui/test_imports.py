"""The app process stays free of the heavy engine: importing the app (and the inspect screen, which
draws engine.inspection's reports) loads no torch, transformers, datasets or peft (DESIGN.md),
checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "peft")


def test_importing_the_app_loads_no_torch():
    code = "import sys, llmlab_tui.app, llmlab_tui.__main__, llmlab_tui.screens.inspect; "
    code += f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
