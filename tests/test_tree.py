"""The test tree as pytest reads it: with no __init__.py, each test module is imported by its file
name alone, so two test files of one name in different folders cannot both be collected."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_module_has_a_name_of_its_own():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
