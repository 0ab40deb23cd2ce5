"""A tiny world for the stage objectives: a digit tokenizer, a tiny model, local datasets.

The tokenizer knows ten digits and a few words, so a random tiny model answers a digit often
enough that a reward has variance from the first step, and a test sees learning in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

WORDS = ["<unk>", "<pad>", "<eos>", *map(str, range(10)), "user", "assistant", "system", "pick", "say"]


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


@pytest.fixture
def make_context(tmp_path):
    """make_context(stage, datasets_rows, **stage_fields) -> ObjectiveContext on the CPU, fp32."""
    from engine.device import Precision
    from engine.factory import build_model
    from engine.objectives.base import ObjectiveContext
    from engine.project import project_from_dict

    def make(stage: str, rows: list[dict], **fields) -> ObjectiveContext:
        data = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
        table = {"datasets": [{"path": data, "eval_fraction": 0.2}], "eval_every": 0, "sample_every": 0, **fields}
        project = project_from_dict(
            {
                "seed": 0,
                "tokenizer": {"source": "bytes"},
                "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64},
                stage: table,
            },
            tmp_path,
        )
        tokenizer = digit_tokenizer()
        torch.manual_seed(0)
        model = build_model(project, tokenizer)
        return ObjectiveContext(
            project=project, stage=stage, config=project.stage(stage), tokenizer=tokenizer, model=model,
            device=torch.device("cpu"), precision=Precision("fp32", "cpu"), seed=0,
        )

    return make


def train(ctx, objective) -> list[dict]:
    """Run the one training loop on `objective`; returns its metrics events."""
    from engine.trainer import Trainer

    events: list[dict] = []
    Trainer(ctx, objective, events.append).run()
    return [e for e in events if e["type"] == "metrics"]
