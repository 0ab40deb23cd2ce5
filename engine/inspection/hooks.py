"""The one way the inspection tools hold hooks: registered for a `with` block, always removed after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch.utils.hooks import RemovableHandle


@contextlib.contextmanager
def hooked(handles: list[RemovableHandle]) -> Iterator[None]:
    """Keep the hooks of `handles` for the block; remove every one when it ends, raised or not."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
