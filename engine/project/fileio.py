"""Atomic writes: a file or directory appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from engine.project.problems import LLMLabError
from engine.project.sizing import format_bytes

# How a full disk shows up beyond OSError(ENOSPC): torch.save's zip writer and safetensors.
_DISK_FULL_TEXT = ("No space left on device", "unexpected pos", "file write failed", "StorageFull")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path` in one rename.

    A crash inside the block leaves any previous `path` untouched and no half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def disk_full(error: BaseException, path: str | Path) -> LLMLabError | None:
    """One line naming `path` and the free space when `error` (or what caused it) is a full disk."""
    seen: BaseException | None = error
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or any(t in str(seen) for t in _DISK_FULL_TEXT):
            return LLMLabError(
                f"{path}: the disk is full ({_free(Path(path))} free); free some space, then "
                "resume the run (llmlab run PROJECT --stage STAGE --resume): nothing written so far "
                "was damaged"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _free(path: Path) -> str:
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return format_bytes(shutil.disk_usage(path).free)
    except OSError:
        return "unknown"
