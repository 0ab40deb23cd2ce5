"""Output folders (`--out`): new or empty ones are written; a non-empty one only when it is an
earlier output of the same command holding nothing else, and only with overwrite; never the
current folder, a file, or a folder the command reads. Every refusal names the path and the rule."""

from __future__ import annotations

import json

import pytest

from engine.project.layout import OUTPUT_MARKER
from engine.project.outputs import check_output, output_directory, read_marker
from engine.project.problems import LLMLabError

BY = "llmlab export --format llama"


def write(path, overwrite=False, sources=(), by=BY, files=("config.json", "sub/weights.bin")):
    with output_directory(path, by, overwrite, sources) as tmp:
        for name in files:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(name)


def refusal(path, **kwargs) -> str:
    with pytest.raises(LLMLabError) as caught:
        check_output(path, BY, **kwargs)
    (line,) = caught.value.lines
    return line


def test_a_new_folder_is_written_with_its_marker(tmp_path):
    write(tmp_path / "a" / "out", sources=[tmp_path / "model"])
    marker = json.loads((tmp_path / "a" / "out" / OUTPUT_MARKER).read_text())
    assert marker == {
        "written_by": BY,
        "sources": [str(tmp_path / "model")],
        "files": ["config.json", "sub/weights.bin"],
    }
    assert read_marker(tmp_path / "a" / "out") == marker
    assert read_marker(tmp_path) is None


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "out").mkdir()
    write(tmp_path / "out")
    assert (tmp_path / "out" / "config.json").is_file()


def test_a_folder_holding_other_things_is_refused_by_name(tmp_path):
    run = tmp_path / "run"
    for name in ("final", "step-000004", "step-000008"):
        (run / name).mkdir(parents=True)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "project.toml").write_text("")
    assert refusal(run) == (
        f"--out: {run} is not empty and was not written by {BY} (it holds final/, "
        "metrics.jsonl, project.toml, step-000004/, ...); choose an empty or new folder"
    )
    assert refusal(run, overwrite=True).startswith(f"--out: {run} is not empty and was not written by {BY}")
    assert sorted(p.name for p in run.iterdir()) == [
        "final",
        "metrics.jsonl",
        "project.toml",
        "step-000004",
        "step-000008",
    ]


def test_an_earlier_output_is_replaced_only_with_overwrite(tmp_path):
    out = tmp_path / "out"
    write(out, files=("old.bin",))
    assert (
        refusal(out) == f"--out: {out} holds an earlier output of {BY}; --overwrite replaces it, or choose a new folder"
    )
    assert (out / "old.bin").is_file()
    write(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "config.json", "sub"]
    assert not list(tmp_path.glob(".out.*"))  # no temporary folders left beside it


def test_an_earlier_output_with_things_added_is_refused(tmp_path):
    out = tmp_path / "out"
    write(out)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "more.bin").write_text("mine")
    assert refusal(out, overwrite=True) == (
        f"--out: {out} holds an earlier output of {BY} and things it did not write (notes.txt, sub/more.bin); "
        "move them out or choose a new folder"
    )


def test_another_commands_output_is_refused(tmp_path):
    write(tmp_path / "merged", by="llmlab merge")
    assert refusal(tmp_path / "merged", overwrite=True) == (
        f"--out: {tmp_path / 'merged'} was written by llmlab merge, not {BY}; choose an empty or new folder"
    )


def test_the_current_folder_and_dot_are_refused_with_a_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # empty
    assert refusal(".") == f"--out: . ({tmp_path}) is the current folder; choose a new folder"
    assert refusal("..") == f"--out: .. ({tmp_path.parent}) holds the current folder; choose a new folder"
    assert check_output("new", BY) == tmp_path / "new"


def test_sources_and_files_are_refused(tmp_path):
    model = tmp_path / "run" / "final"
    model.mkdir(parents=True)
    (tmp_path / "file").write_text("")
    assert refusal(model, sources=[model]) == f"--out: {model} is the folder {BY} reads from; choose another folder"
    assert refusal(tmp_path / "run", sources=[model]) == (
        f"--out: {tmp_path / 'run'} holds {model}, which {BY} reads from; choose a folder outside it"
    )
    assert refusal(model / "llama", sources=[model]) == (
        f"--out: {model / 'llama'} is inside {model}, which {BY} reads from; choose a folder outside it"
    )
    assert refusal(tmp_path / "file") == f"--out: {tmp_path / 'file'} is a file, not a folder; choose a new folder"
    assert refusal("/").endswith("is the root of the filesystem; choose a new folder")


def test_a_failed_write_leaves_the_earlier_output(tmp_path):
    out = tmp_path / "out"
    write(out, files=("old.bin",))
    with pytest.raises(RuntimeError), output_directory(out, BY, overwrite=True) as tmp:
        (tmp / "new.bin").write_text("")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "old.bin"]
