"""Checkpoints: model directories plus the trainer state that resumes a run exactly.

A checkpoint is `runs/<stage>-<ts>/step-000200/` (or `final/`): a Hugging Face model directory
with the tokenizer files, plus `trainer_state.pt` holding the optimizer, the scheduler, every
RNG (python, numpy, torch, cuda), the step, the tokens seen and each rank's objective state
(a sharded run keeps its optimizer state in the OPTIMIZER_DCP folder instead: engine/sharding.py).
It is written atomically and only step directories beyond `keep_last` are pruned. The state
holds tensors and builtins only and is read with `weights_only=True`: loading runs no code.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from engine.project.fileio import atomic_directory
from engine.project.layout import FINAL, OPTIMIZER_DCP, TRAINER_STATE
from engine.project.problems import LLMLabError
from engine.project.runs import checkpoints


def write_checkpoint(
    path: Path, model, tokenizer, objective, trainer_state: dict, optimizer_dir: Path | None = None
) -> Path:
    """Write a model directory with `trainer_state` to `path` in one atomic rename; a sharded run's
    optimizer state, written by every rank into `optimizer_dir`, moves in as OPTIMIZER_DCP."""
    with atomic_directory(path) as tmp:
        tokenizer.save_pretrained(tmp)
        if not objective.save(tmp):
            model.save_pretrained(tmp)
        torch.save(trainer_state, tmp / TRAINER_STATE)
        if optimizer_dir is not None:
            os.replace(optimizer_dir, tmp / OPTIMIZER_DCP)
    return path


def prune_checkpoints(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` step directories (0 keeps every one); `final/` stays."""
    steps = [p for p in checkpoints(run_dir) if p.name != FINAL]
    doomed = steps[:-keep_last] if keep_last > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def load_trainer_state(checkpoint_dir: Path) -> dict:
    """The trainer state of a checkpoint, read with weights_only: a file holding anything but tensors
    and plain Python values is refused (LLMLabError naming it), never unpickled in full."""
    file = Path(checkpoint_dir) / TRAINER_STATE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if WEIGHTS_ONLY_REFUSAL not in str(error):
            raise LLMLabError(f"{file}: not a trainer state torch can read ({_detail(error)})") from error
        what = (
            "holds objects that are not tensors or plain Python values"
            if "GLOBAL" in str(error)
            else "holds something other than tensors and plain Python values, or is damaged"
        )
        raise LLMLabError(
            f"{file}: {what} ({_detail(error)}); it is not loaded, since loading it could run code. "
            "Resume from another checkpoint or start a new run"
        ) from error
    except (RuntimeError, EOFError) as error:  # a truncated or corrupted file
        raise LLMLabError(f"{file}: not a trainer state torch can read ({_detail(error)})") from error


WEIGHTS_ONLY_REFUSAL = "Weights only load failed"


def _detail(error: Exception) -> str:
    """What torch's loading error says in a few words (it wraps them in paragraphs of advice)."""
    text = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"torch refused {found.group(1)}"
    found = re.search(r"Unsupported operand \d+|invalid load key[^\n]*", text)
    if found:
        return found.group(0)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


def rng_state() -> dict:
    """Every random generator the run touches, as tensors and builtins."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    """random.setstate wants the tuples it gave; be safe if a round trip made them lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
