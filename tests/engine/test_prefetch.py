"""Prefetching: the background loader yields the synchronous loader's batches, resumes on the same
batch, raises the thread's errors in the loop, and stops its thread when closed or dropped."""

from __future__ import annotations

import gc
import io

import datasets
import pytest
import torch

from engine.data import TEXT, load_source, token_mixture
from engine.packing import PackedBatches
from engine.prefetch import Prefetched
from engine.project import DatasetConfig
from engine.tokenizer import byte_tokenizer
from tests.engine.test_data import DOCS, write_jsonl


@pytest.fixture
def make(tmp_path):
    """A packer over a map-style and a streaming source (the streaming one wraps often)."""
    write_jsonl(tmp_path / "s.jsonl", [{"text": t} for t in DOCS])

    def packer() -> PackedBatches:
        sources = [
            datasets.Dataset.from_dict({TEXT: DOCS}),
            load_source(DatasetConfig(path="s.jsonl", streaming=True), tmp_path),
        ]
        return PackedBatches(token_mixture(sources, [1, 3], byte_tokenizer(), seed=7), byte_tokenizer(), 8, 4)

    return packer


def same(a, b) -> bool:
    return torch.equal(a.input_ids, b.input_ids) and torch.equal(a.targets, b.targets) and a.num_bytes == b.num_bytes


def test_the_prefetched_batches_are_the_synchronous_ones(make):
    synchronous, prefetched = make(), Prefetched(make(), depth=3)
    for _ in range(120):
        assert same(next(prefetched), next(synchronous))
        assert prefetched.source_token_counts == synchronous.source_token_counts  # the loop's, not the thread's
    prefetched.close()


def test_a_resume_lands_on_the_batch_the_loop_was_to_take(make):
    synchronous, prefetched = make(), Prefetched(make(), depth=4)
    for _ in range(37):
        next(synchronous), next(prefetched)
    buffer = io.BytesIO()
    torch.save(prefetched.state_dict(), buffer)  # as the trainer keeps it, the thread some batches ahead
    assert prefetched.state_dict() == synchronous.state_dict()
    resumed = Prefetched(make())
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert all(same(next(resumed), next(synchronous)) for _ in range(40))
    prefetched.close(), resumed.close()


class Failing:
    """Three batches, then the error a bad row would raise."""

    def __init__(self):
        self.made = 0

    def __next__(self):
        self.made += 1
        if self.made > 3:
            raise ValueError("pretrain.datasets[0]: row 7 has no text")
        return self.made

    def state_dict(self) -> dict:
        return {"made": self.made}


def test_an_error_in_the_thread_is_raised_in_the_loop_with_its_message():
    prefetched = Prefetched(Failing())
    assert [next(prefetched) for _ in range(3)] == [1, 2, 3]
    for _ in range(2):  # and again: the loader stays failed
        with pytest.raises(ValueError, match=r"row 7 has no text") as raised:
            next(prefetched)
    assert any(frame.name == "__next__" for frame in raised.traceback)  # the thread's own frames


def test_a_finite_source_ends_the_loop():
    prefetched = Prefetched(Counted(range(5)))
    assert list(prefetched) == [0, 1, 2, 3, 4]
    with pytest.raises(StopIteration):
        next(prefetched)


class Counted:
    """The values of an iterable, with how many were taken as the state."""

    def __init__(self, values):
        self.values, self.taken = iter(values), 0

    def __next__(self):
        value = next(self.values)
        self.taken += 1
        return value

    def state_dict(self) -> dict:
        return {"taken": self.taken}


def test_closing_or_dropping_the_loader_stops_its_thread(make):
    closed = Prefetched(make(), depth=2)
    next(closed)  # the thread now waits on a full queue
    thread = closed._thread
    closed.close()
    assert not thread.is_alive()
    dropped = Prefetched(make(), depth=2)
    next(dropped)
    thread = dropped._thread
    del dropped
    gc.collect()
    thread.join(timeout=30)  # a bound for a busy machine, not a timing assertion
    assert not thread.is_alive()


EXIT_SCRIPT = """
import torch
from engine.prefetch import Prefetched

class Slow:
    def __init__(self):
        self.made = 0
    def __next__(self):
        if self.made:  # the batch being made when the interpreter exits: torch lets the GIL go
            a = torch.randn(300, 300)
            for _ in range(40):
                a = a @ a / 300
            print("finished the batch", flush=True)
        self.made += 1
        return self.made
    def state_dict(self):
        return {}

loader = Prefetched(Slow(), depth=1)
next(loader)
"""


def test_the_interpreter_waits_for_the_thread_at_exit():
    """A daemon thread still inside torch when Python finalizes aborts the process ("terminate
    called without an active exception", SIGABRT): the exit stops and joins it first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "finished the batch" in done.stdout
