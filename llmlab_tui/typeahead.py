"""Keys typed while the app starts, kept as they were typed until the app reads them.

Until Textual takes the terminal (a few tenths of a second after `llmlab` is run), the terminal
is in its line-editing mode: it echoes what is typed, and Ctrl+U erases the line typed so far,
Backspace the last byte (a bit of an escape sequence), so a burst typed at launch reached the app
edited: `PgDn Tab End Ctrl+U 9 6 Tab End Backspace 6` arrived as `96<Tab>ESC[46`. `typed_ahead()`
turns that editing off (Textual's own input flags) as the process starts, and puts the user's
settings back once the app has ended (Textual restores the ones it found, which are these).
Ctrl+C still interrupts a start.
"""

from __future__ import annotations

import contextlib
import sys
import termios
from collections.abc import Iterator
from typing import TextIO

LINE_EDITING = termios.ECHO | termios.ICANON | termios.IEXTEN  # lflag: echo, lines, Ctrl+V and friends
INPUT_TRANSLATION = termios.IXON | termios.IXOFF | termios.ICRNL | termios.INLCR | termios.IGNCR  # iflag


@contextlib.contextmanager
def typed_ahead(stream: TextIO | None = None) -> Iterator[None]:
    """Within the block, bytes typed on `stream`'s terminal (stdin) stay as typed; a no-op off a terminal."""
    stream = stream or sys.stdin
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, termios.error):  # not a terminal (a pipe, a test's captured stdin)
        yield
        return
    mode = termios.tcgetattr(fd)
    mode[0] &= ~INPUT_TRANSLATION
    mode[3] &= ~LINE_EDITING
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
