"""When the Monitor redraws its charts: as often as once a second, less often while the app's own
CPU use would slow the run it watches.

A worker training on the CPU uses every core, so each cycle the app spends is a cycle the step
waits for (`llmlab bench tui` measures the ratio). After each draw the clock looks at the app
process's CPU time over the interval just ended: above `share` of one core the interval doubles
(up to `slowest`), below half of it the interval halves (down to `fastest`).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RedrawClock:
    """Says when a redraw is due and, from the CPU time each interval cost, how far apart they are."""

    def __init__(
        self,
        fastest: float = 1.0,
        slowest: float = 8.0,
        share: float = 0.03,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,  # every thread of the app, the event reader's too
    ) -> None:
        self.fastest, self.slowest, self.share = fastest, slowest, share
        self.clock, self.cpu = clock, cpu
        self.interval = fastest
        self._at: float | None = None  # when the last draw was made (None: draw at once)
        self._cpu_at = 0.0

    def due(self) -> bool:
        return self._at is None or self.clock() - self._at >= self.interval

    def drawn(self) -> None:
        """Note a draw, and set the interval from the CPU share of the one that just ended."""
        now, cpu = self.clock(), self.cpu()
        if self._at is not None and now > self._at:
            used = (cpu - self._cpu_at) / (now - self._at)
            if used > self.share:
                self.interval = min(self.interval * 2, self.slowest)
            elif used < self.share / 2:
                self.interval = max(self.interval / 2, self.fastest)
        self._at, self._cpu_at = now, cpu

    def now(self) -> None:
        """Make the next redraw due at once (the terminal was resized, the pane just shown)."""
        self._at = None
