"""The app process stays free of the heavy engine: importing the app loads no torch,
transformers, datasets or peft (DESIGN.md), checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "datasets", "peft")


def test_importing_the_app_loads_no_torch():
    code = f"import sys, llmlab_tui.app, llmlab_tui.__main__; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
