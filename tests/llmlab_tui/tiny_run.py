"""A tiny project the app can really train in seconds: byte tokenizer, d_model 32, 2 layers, a few
steps on a small local text file, with evals and samples so every monitor pane gets something."""

from __future__ import annotations

import random
from pathlib import Path

import tomli_w

WORDS = "the cat sat on a mat and a dog ran to the big red house with a small blue door".split()


def make_tiny_project(directory: Path, **pretrain) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    paragraphs = (" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(200))
    (directory / "corpus.txt").write_text("\n\n".join(paragraphs) + "\n")
    stage = {"steps": 6, "batch_size": 4, "seq_len": 32, "lr": 3e-3, "warmup_steps": 1, "eval_every": 3,
             "eval_batches": 1, "sample_every": 3, "save_every": 0,
             "datasets": [{"path": "corpus.txt", "eval_fraction": 0.1}], **pretrain}
    data = {"name": directory.name, "seed": 1, "tokenizer": {"source": "bytes"},
            "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 256},
            "pretrain": stage}
    (directory / "project.toml").write_text(tomli_w.dumps(data))
    return directory
