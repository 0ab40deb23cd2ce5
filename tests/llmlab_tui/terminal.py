"""A real terminal for end-to-end tests: the app runs in a tmux pane of a fixed size, keys go in
through `tmux send-keys` (one call per burst, so they arrive with no pause between them) and the
screen comes back as text through `tmux capture-pane`.

Each Terminal has its own tmux server (`-L`), so a test never touches a user's sessions.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TMUX = shutil.which("tmux")


class Terminal:
    """One tmux session running `command` in `cwd` at `width` × `height`."""

    def __init__(self, command: Sequence[str], *, width: int, height: int, cwd: Path, env: dict[str, str]) -> None:
        self.socket = f"llmlab-test-{os.getpid()}-{width}x{height}"
        self.env = {**env, "TERM": "xterm-256color"}
        line = f"cd {shlex.quote(str(cwd))} && exec {shlex.join(command)}"
        self._tmux("new-session", "-d", "-s", "app", "-x", str(width), "-y", str(height), line)
        self._tmux("set-option", "-t", "app", "remain-on-exit", "on")  # the last screen stays readable

    def _tmux(self, *args: str) -> str:
        done = subprocess.run([TMUX, "-L", self.socket, *args], env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def keys(self, *keys: str) -> None:
        """Press keys in one burst; names as tmux knows them (Tab, Enter, Escape, F4, C-s, BSpace)."""
        self._tmux("send-keys", "-t", "app", *keys)

    def type(self, text: str) -> None:
        """Type `text` in one burst, character by character, as a fast typist or an SSH link delivers it."""
        self._tmux("send-keys", "-t", "app", "-l", text)

    def paste(self, text: str) -> None:
        """Paste `text` as a terminal does (bracketed paste, when the app asked for it)."""
        self._tmux("set-buffer", "-b", "test", text)
        self._tmux("paste-buffer", "-p", "-d", "-b", "test", "-t", "app")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "app")

    def alive(self) -> bool:
        return self._tmux("display-message", "-p", "-t", "app", "#{pane_dead}").strip() == "0"

    def wait_for(self, condition: str | Callable[[str], bool], timeout: float = 30.0) -> str:
        """The screen once it shows `condition` (a text, or a test of the screen's text)."""
        test = condition if callable(condition) else (lambda screen: condition in screen)
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()  # read before the screen: a pane that dies after still gets a look
            screen = self.screen()
            if test(screen):
                return screen
            if time.monotonic() > deadline or not alive:
                raise AssertionError(f"the screen never showed {condition!r}; it shows:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], env=self.env, capture_output=True)
