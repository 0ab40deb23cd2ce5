"""The default tiny model of the inspection tests (tests/engine/inspection/models.py)."""

import pytest

from tests.engine.inspection.models import tiny_model


@pytest.fixture
def model():
    return tiny_model()
