"""Shared fixtures for the app's pilot tests: a clean terminal environment and a projects folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.project import new_project


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR and TEXTUAL_THEME change the rendering; the tests run without them."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)


@pytest.fixture
def projects_dir(tmp_path: Path) -> Path:
    """A projects folder holding one blank project, `alpha`."""
    directory = tmp_path / "projects"
    new_project("alpha", "blank", directory)
    return directory
