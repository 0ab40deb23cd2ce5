"""The stage objectives' fixture: an objective context on the digit tokenizer (helpers.py)."""

from __future__ import annotations

import functools

import pytest

from tests.engine.objectives.helpers import objective_context


@pytest.fixture
def make_context(tmp_path):
    """make_context(stage, datasets_rows, **stage_fields) -> ObjectiveContext (helpers.objective_context)."""
    return functools.partial(objective_context, tmp_path)
