"""A tiny world for the stage objectives' tests: a digit tokenizer, local datasets, the loop.

The tokenizer knows ten digits and a few words, so a random tiny model answers a digit often
enough that a reward has variance from the first step, and a test sees learning in seconds.
The `make_context` fixture (conftest.py) builds an objective's context on it.
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["<unk>", "<pad>", "<eos>", *map(str, range(10)), "user", "assistant", "system", "pick", "say"]
DIGITS_DIR = "digits"  # where a project keeps the digit tokenizer: its tokenizer.source


def digit_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with spaces
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>")


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path.name


def train(ctx, objective) -> list[dict]:
    """Run the one training loop on `objective`; returns its metrics events."""
    from engine.trainer import Trainer

    events: list[dict] = []
    Trainer(ctx, objective, events.append).run()
    return [e for e in events if e["type"] == "metrics"]
