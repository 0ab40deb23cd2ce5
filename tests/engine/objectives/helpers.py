"""A tiny world for the stage objectives' tests: a digit tokenizer, local datasets, the loop.

The tokenizer knows ten digits and a few words, so a random tiny model answers a digit often
enough that a reward has variance from the first step, and a test sees learning in seconds.
`objective_context` (the `make_context` fixture of conftest.py) builds an objective's context on it.
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


def objective_context(directory: Path, stage: str, rows: list[dict], **fields):
    """An ObjectiveContext for `stage` on the CPU, fp32, its data `rows` and project in `directory`.

    The project's tokenizer.source is a directory holding the digit tokenizer, and the context's
    tokenizer is loaded from it, as a run would.
    """
    import torch

    from engine.device import Precision
    from engine.factory import build_model
    from engine.objectives.base import ObjectiveContext
    from engine.project import project_from_dict
    from engine.project_tokenizer import project_tokenizer

    if not (directory / DIGITS_DIR).is_dir():
        digit_tokenizer().save_pretrained(directory / DIGITS_DIR)
    data = write_jsonl(directory / f"{stage}.jsonl", rows)
    table = {"datasets": [{"path": data, "eval_fraction": 0.2}], "eval_every": 0, "sample_every": 0, **fields}
    project = project_from_dict(
        {
            "seed": 0,
            "tokenizer": {"source": DIGITS_DIR},
            "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64},
            stage: table,
        },
        directory,
    )
    tokenizer = project_tokenizer(project)
    torch.manual_seed(0)
    model = build_model(project, tokenizer)
    return ObjectiveContext(
        project=project,
        stage=stage,
        config=project.stage(stage),
        tokenizer=tokenizer,
        model=model,
        device=torch.device("cpu"),
        precision=Precision("fp32", "cpu"),
        seed=0,
    )


def train(ctx, objective) -> list[dict]:
    """Run the one training loop on `objective`; returns its metrics events."""
    from engine.trainer import Trainer

    events: list[dict] = []
    Trainer(ctx, objective, events.append).run()
    return [e for e in events if e["type"] == "metrics"]
