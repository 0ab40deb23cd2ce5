"""Assembling a run: from a project on disk to a Trainer ready to run (what engine.worker.run calls).

`train_stage` goes through the steps in order: load the project (with the run's overrides), write
the demo's data files if they are missing, pick the device and join the other ranks, make the
run directory (or find the checkpoint to resume), load the starting model (tokenizer + weights:
the resumed checkpoint's, the stage's `init`, or a fresh model on the project's tokenizer),
build the objective's context and the objective, and hand them to the one loop in engine.trainer.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import transformers

from engine import device as dev
from engine.checkpoints import load_trainer_state
from engine.demo_data import ensure_demo_data
from engine.events import log
from engine.factory import build_model, load_model
from engine.lora import merged_start
from engine.objectives import build_objective, check_available
from engine.objectives.base import ObjectiveContext
from engine.project import load_project, save_project
from engine.project.layout import ADAPTER, METRICS_FILE, TRAINER_STATE, model_kind
from engine.project.problems import LLMLabError
from engine.project.runs import create_run_dir, latest_checkpoint, latest_run, resolve_init
from engine.project_tokenizer import project_tokenizer
from engine.tokenizer import load_tokenizer
from engine.trainer import Trainer


def train_stage(project_path, stage: str, overrides: list[str], emit: Callable[[dict], None],
                open_log: Callable[[Path], None], control: Callable[[], str | None],
                device: str | None = None, resume: bool = False) -> dict:
    """Load the project, set up device / ranks / run directory / model / objective, train.

    `open_log(path)` is called on rank 0 with the run's metrics.jsonl once it is known.
    """
    transformers.utils.logging.disable_progress_bar()  # events report checkpoints
    project = load_project(project_path, overrides)
    ensure_demo_data(project)  # the demo writes its data files when they are missing
    config = project.stage(stage)
    check_available(stage)
    ranks = dev.distributed_from_env()
    device = dev.pick_device(device, ranks.local_rank)
    dev.init_distributed(ranks, device)
    precision, warning = dev.pick_precision(device)
    run_dir, resume_dir = dev.broadcast_object(run_directory(project, stage, resume) if ranks.is_main else None)
    if ranks.is_main:
        open_log(run_dir / METRICS_FILE)
        if resume_dir is None:
            save_project(project, run_dir)
        if warning:
            emit(log(warning, "warning"))
    seed_everything(project.seed)
    tokenizer, model = starting_model(project, stage, config, resume_dir, device, ranks)
    dev.broadcast_parameters(model)
    seed_everything(project.seed + ranks.rank)  # dropout differs between ranks
    ctx = ObjectiveContext(project=project, stage=stage, config=config, tokenizer=tokenizer, model=model,
                           device=device, precision=precision, seed=project.seed, run_dir=run_dir,
                           rank=ranks.rank, world_size=ranks.world_size, resume_dir=resume_dir,
                           log=lambda message, level="info": emit(log(message, level)))
    objective = build_objective(ctx)
    state = load_trainer_state(resume_dir) if resume_dir is not None else None
    return Trainer(ctx, objective, emit if ranks.is_main else None, control, state).run()


def run_directory(project, stage: str, resume: bool) -> tuple[Path, Path | None]:
    """(the run directory, the checkpoint to resume from): a new run, or the newest one's newest."""
    if not resume:
        return create_run_dir(project, stage), None
    run_dir = latest_run(project, stage)
    if run_dir is None:
        raise LLMLabError(f"--resume: the project has no {stage} run to resume (runs/{stage}-*)")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None or not (checkpoint / TRAINER_STATE).is_file():
        raise LLMLabError(f"--resume: {run_dir.name} has no checkpoint with a {TRAINER_STATE} to resume from")
    return run_dir, checkpoint


def starting_model(project, stage: str, config, resume_dir: Path | None, device, ranks: dev.Distributed):
    """(tokenizer, model on device): the resumed checkpoint's weights, the stage's `init`, or new."""
    if resume_dir is not None and model_kind(resume_dir) not in (None, ADAPTER):
        source = resume_dir
    elif getattr(config, "init", ""):  # every stage after pretrain starts from other weights
        source = resolve_init(project, config.init, f"{stage}.init")
    else:
        if ranks.is_main:  # a project BPE is trained once, by rank 0, then read by the others
            project_tokenizer(project)
        dev.barrier()
        tokenizer = project_tokenizer(project)
        return tokenizer, build_model(project, tokenizer).to(device)
    return load_tokenizer(str(source)), merged_start(load_model(source, device))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
