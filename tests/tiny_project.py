"""A tiny pretraining project on disk, for the engine's and the app's tests: byte tokenizer,
2 layers, d_model 32, a small local text file. Also the events sink and stop control that
drive `engine.worker.run` in-process."""

from __future__ import annotations

import queue
import random
from pathlib import Path

import tomli_w

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "a",
    "dog",
    "ran",
    "to",
    "the",
    "big",
    "red",
    "house",
    "with",
    "a",
    "small",
    "blue",
    "door",
]


def write_corpus(path: Path, paragraphs: int = 300, seed: int = 0) -> None:
    rng = random.Random(seed)
    text = "\n\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(paragraphs))
    path.write_text(text + "\n")


def make_project(directory: Path, *, seed: int = 3, paragraphs: int = 300, **pretrain) -> Path:
    """A project directory whose [pretrain] table is the small defaults below, updated by `pretrain`.

    `seed` is the project's seed; `paragraphs` the length of its corpus.txt.
    """
    directory.mkdir(parents=True, exist_ok=True)
    write_corpus(directory / "corpus.txt", paragraphs)
    stage = {
        "steps": 8,
        "batch_size": 4,
        "grad_accum": 1,
        "seq_len": 32,
        "lr": 3e-3,
        "warmup_steps": 2,
        "eval_every": 4,
        "eval_batches": 2,
        "sample_every": 0,
        "save_every": 0,
        "keep_last": 2,
        "datasets": [{"path": "corpus.txt", "eval_fraction": 0.1}],
        **pretrain,
    }
    data = {
        "name": directory.name,
        "seed": seed,
        "tokenizer": {"source": "bytes"},
        "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 256},
        "pretrain": stage,
    }
    (directory / "project.toml").write_text(tomli_w.dumps(data))
    return directory


# What the app's tests train from the monitor, in seconds: 6 steps with an eval and a sample at
# steps 3 and 6, so every monitor pane gets something.
APP_RUN = dict(
    seed=1, paragraphs=200, steps=6, warmup_steps=1, eval_every=3, eval_batches=1, sample_every=3, keep_last=3
)


class Recorder(list):
    """An events sink for `engine.worker.run`: keeps every event, in order."""

    def put(self, event: dict) -> None:
        self.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self if e["type"] == kind]


class StopAfter:
    """A control source for `engine.worker.run` that sends `stop` once `steps` metrics were seen."""

    def __init__(self, recorder: Recorder, steps: int):
        self.recorder, self.steps, self.sent = recorder, steps, False

    def poll(self) -> str | None:
        """The Trainer's form of control: the next message or None."""
        if not self.sent and len(self.recorder.of("metrics")) >= self.steps:
            self.sent = True
            return "stop"
        return None

    def get_nowait(self):
        """The worker's form of control: a queue's get_nowait."""
        message = self.poll()
        if message is None:
            raise queue.Empty
        return message
