"""The stage objectives' fixture: an objective context on the digit tokenizer (helpers.py)."""

from __future__ import annotations

import pytest
import torch

from tests.engine.objectives.helpers import DIGITS_DIR, digit_tokenizer, write_jsonl


@pytest.fixture
def make_context(tmp_path):
    """make_context(stage, datasets_rows, **stage_fields) -> ObjectiveContext on the CPU, fp32.

    The project's tokenizer.source is a directory holding the digit tokenizer, and the context's
    tokenizer is loaded from it, as a run would.
    """
    from engine.device import Precision
    from engine.factory import build_model
    from engine.objectives.base import ObjectiveContext
    from engine.project import project_from_dict
    from engine.project_tokenizer import project_tokenizer

    digit_tokenizer().save_pretrained(tmp_path / DIGITS_DIR)

    def make(stage: str, rows: list[dict], **fields) -> ObjectiveContext:
        data = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
        table = {"datasets": [{"path": data, "eval_fraction": 0.2}], "eval_every": 0, "sample_every": 0, **fields}
        project = project_from_dict(
            {
                "seed": 0,
                "tokenizer": {"source": DIGITS_DIR},
                "model": {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64},
                stage: table,
            },
            tmp_path,
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

    return make
