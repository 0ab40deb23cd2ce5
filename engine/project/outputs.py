"""Folders a command writes where the user says (`--out`): an output never deletes what the
command did not create.

Every output folder records what wrote it, in OUTPUT_MARKER (`.llmlab-output.json`: `written_by`,
e.g. "llmlab merge", the `sources` it was made from, and the `files` it wrote). A target folder
is used when it is new or empty; a non-empty one only when it is an earlier output of the same
command, holding nothing that output did not write, and the caller passes `overwrite`. Never the
current folder or one holding it, a file, the filesystem root, or a folder that is, holds or lies
inside one the command reads (`sources`). Paths are resolved first, so `.` has a name.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.project.fileio import atomic_directory, atomic_write_text
from engine.project.layout import OUTPUT_MARKER
from engine.project.problems import LLMLabError, Problem

SHOWN = 4  # entries named when refusing a folder that holds other things


def read_marker(path: str | Path) -> dict | None:
    """What an output folder's marker says wrote it; None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(path) / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("written_by"), str) else None


def check_output(
    path: str | Path, written_by: str, overwrite: bool = False, sources: Iterable[str | Path] = (), field: str = "--out"
) -> Path:
    """The resolved `path` when `written_by` may write its output there; else LLMLabError naming the rule."""
    given = str(path)
    path = Path(path).expanduser().resolve()

    def refuse(message: str):
        shown = given if given == str(path) else f"{given} ({path})"
        raise LLMLabError(Problem(field, f"{shown} {message}"))

    if not path.name:
        refuse("is the root of the filesystem; choose a new folder")
    if path.exists() and not path.is_dir():
        refuse("is a file, not a folder; choose a new folder")
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        refuse(f"{'is' if path == cwd else 'holds'} the current folder; choose a new folder")
    for source in sources:
        source = Path(source).expanduser().resolve()
        if path == source:
            refuse(f"is the folder {written_by} reads from; choose another folder")
        if path in source.parents:
            refuse(f"holds {source}, which {written_by} reads from; choose a folder outside it")
        if source in path.parents:
            refuse(f"is inside {source}, which {written_by} reads from; choose a folder outside it")
    entries = sorted(path.iterdir()) if path.is_dir() else []
    if not entries:
        return path
    marker = read_marker(path)
    if marker is None:
        refuse(
            f"is not empty and was not written by {written_by} (it holds {_names(entries)}); "
            "choose an empty or new folder"
        )
    if marker["written_by"] != written_by:
        refuse(f"was written by {marker['written_by']}, not {written_by}; choose an empty or new folder")
    extra = _unlisted(path, marker.get("files"))
    if extra:
        refuse(
            f"holds an earlier output of {written_by} and things it did not write ({', '.join(extra[:SHOWN])}"
            f"{', ...' if len(extra) > SHOWN else ''}); move them out or choose a new folder"
        )
    if not overwrite:
        refuse(f"holds an earlier output of {written_by}; --overwrite replaces it, or choose a new folder")
    return path


@contextlib.contextmanager
def output_directory(
    path: str | Path, written_by: str, overwrite: bool = False, sources: Iterable[str | Path] = (), field: str = "--out"
) -> Iterator[Path]:
    """`check_output`, then an `atomic_directory` at the resolved path, its marker written last."""
    sources = [Path(s).expanduser().resolve() for s in sources]
    path = check_output(path, written_by, overwrite, sources, field)
    with atomic_directory(path) as tmp:
        yield tmp
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if not p.is_dir())
        marker = {"written_by": written_by, "sources": [str(s) for s in sources], "files": files}
        atomic_write_text(tmp / OUTPUT_MARKER, json.dumps(marker, indent=1) + "\n")


def _names(entries: list[Path]) -> str:
    names = [f"{e.name}/" if e.is_dir() and not e.is_symlink() else e.name for e in entries]
    return ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")


def _unlisted(path: Path, files) -> list[str]:
    """What lies in `path` beyond the files its marker lists (and the folders holding them)."""
    listed = set(files) if isinstance(files, list) else set()
    allowed = {OUTPUT_MARKER} | listed | {parent.as_posix() for f in listed for parent in Path(f).parents}
    found = []
    for directory, dirs, names in os.walk(path):
        for name in sorted(dirs) + sorted(names):
            relative = (Path(directory) / name).relative_to(path).as_posix()
            if relative not in allowed:
                found.append(relative)
        dirs[:] = [d for d in dirs if (Path(directory) / d).relative_to(path).as_posix() in allowed]
    return sorted(found)
