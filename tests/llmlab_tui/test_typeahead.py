"""Keys typed while the app starts reach it as typed: the terminal's line editing is off from the
first moment, and the user's settings come back afterwards."""

from __future__ import annotations

import os
import select
import termios

import pytest

from llmlab_tui.typeahead import typed_ahead

BURST = b"\x1b[6~\t\x1b[4~\x1596\t\x1b[4~\x7f6\r"  # PgDn Tab End Ctrl+U 9 6 Tab End Backspace 6 Enter


@pytest.fixture
def terminal():
    """A pseudo-terminal: the keyboard's end and the app's (opened as its stdin)."""
    keyboard, app_side = os.openpty()
    stream = os.fdopen(app_side, "r")
    yield keyboard, stream
    stream.close()
    os.close(keyboard)


def read_typed(stream, keyboard: int) -> bytes:
    os.write(keyboard, BURST)
    typed = b""
    while select.select([stream.fileno()], [], [], 0.5)[0]:
        typed += os.read(stream.fileno(), 1024)
    return typed


def test_a_burst_typed_at_launch_is_read_as_typed(terminal):
    keyboard, stream = terminal
    with typed_ahead(stream):
        assert read_typed(stream, keyboard) == BURST  # no line editing, no CR → NL


def test_without_it_the_terminal_edits_the_burst_and_the_settings_come_back(terminal):
    keyboard, stream = terminal
    before = termios.tcgetattr(stream.fileno())
    with typed_ahead(stream):
        pass
    assert termios.tcgetattr(stream.fileno()) == before
    # the line-editing terminal: Ctrl+U erased the start, Backspace a byte of End's sequence
    assert read_typed(stream, keyboard) == b"96\t\x1b[46\n"


def test_off_a_terminal_it_does_nothing(tmp_path):
    with open(tmp_path / "file", "w+") as stream, typed_ahead(stream):
        pass
