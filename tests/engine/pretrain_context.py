"""The context a pretraining objective runs in, for tests: the byte tokenizer, a fresh model built
after seeding torch with 0, the CPU in fp32."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.device import Precision
from engine.factory import build_model
from engine.objectives.base import ObjectiveContext
from engine.tokenizer import byte_tokenizer


def pretrain_context(project, *, seed: int | None = None, run_dir: Path | None = None) -> ObjectiveContext:
    """`project`'s pretrain stage on a new model; `seed` is the context's (default the project's)."""
    tokenizer = byte_tokenizer()
    torch.manual_seed(0)
    return ObjectiveContext(
        project=project,
        stage="pretrain",
        config=project.pretrain,
        tokenizer=tokenizer,
        model=build_model(project, tokenizer),
        device=torch.device("cpu"),
        precision=Precision("fp32", "cpu"),
        seed=project.seed if seed is None else seed,
        run_dir=run_dir,
    )
