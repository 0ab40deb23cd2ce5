"""Assembling a run: from a project on disk to a Trainer ready to run (what engine.worker.run calls).

`train_stage` goes through the steps in order: load the project (with the run's overrides), write
the demo's data files if they are missing, pick the device and join the other ranks, make and
lock the run directory (or lock, check and clean the one to resume: engine/project/resume.py),
load the starting model (tokenizer + weights: the resumed checkpoint's, the stage's `init`, or a
fresh model on the project's tokenizer), on a GPU check that the run's predicted memory fits it
(engine/memory.py), build the objective's context and the objective, and hand them to the one
loop in engine.trainer. Rank 0 says which of these it is in (`phase` events, engine/events.py),
with progress where a step has a length, so a watcher sees the run prepare instead of a silent wait.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers

from engine import device as dev
from engine.checkpoints import load_trainer_state
from engine.events import Phases, log
from engine.factory import build_model, load_model
from engine.lora import merged_start
from engine.memory import check_fits
from engine.objectives import build_objective, check_available
from engine.objectives.base import ObjectiveContext
from engine.project import FineTuneConfig, load_project, project_to_dict, save_project
from engine.project.layout import (
    ADAPTER,
    FINAL,
    METRICS_FILE,
    RESUMES_FILE,
    TRAINER_STATE,
    model_kind,
    project_tokenizer_file,
    step_name,
)
from engine.project.problems import LLMLabError, Problem
from engine.project.resume import record_resume, remove_temporaries, resume_changes, resume_run_dir, trained_settings
from engine.project.run_control import take_requests
from engine.project.run_lock import RunLock
from engine.project.runs import create_run_dir, resolve_init, resume_point
from engine.project_tokenizer import project_tokenizer
from engine.tokenizer import load_tokenizer
from engine.tracking import Reporter, check_installed
from engine.trainer import Trainer


def train_stage(
    project_path,
    stage: str,
    overrides: list[str],
    emit: Callable[[dict], None],
    open_log: Callable[[Path], None],
    control: Callable[[], str | None],
    device: str | None = None,
    resume: bool | str | Path = False,
) -> dict:
    """Load the project, set up device / ranks / run directory / model / objective, train.

    `resume`: False for a new run, True for the stage's newest run, or a run folder. Rank 0 holds
    the run's lock for as long as it trains. `open_log(path)` is called on rank 0 with the run's
    metrics.jsonl once it is known.
    """
    transformers.utils.logging.disable_progress_bar()  # events report checkpoints
    datasets.disable_progress_bars()  # and tokenizing (`phase` events)
    project = load_project(project_path, overrides)
    config = project.stage(stage)
    check_available(stage)
    check_installed(project.tracking.report_to)  # before a run folder exists
    ranks = dev.distributed_from_env()
    device = dev.pick_device(device, ranks.local_rank)
    dev.init_distributed(ranks, device)
    precision, warning = dev.pick_precision(device)
    folder = RunFolder.open(project, stage, resume) if ranks.is_main else None
    run_dir, resume_dir = dev.broadcast_object((folder.run_dir, folder.checkpoint) if folder else None)
    reporter = objective = None
    phases = Phases(emit if ranks.is_main else None)
    try:
        if folder is not None:
            open_log(run_dir / METRICS_FILE)
            emit = reporter = Reporter.open(project, stage, run_dir, emit)  # rank 0 reports to the tools
            if warning:
                emit(log(warning, "warning"))
        seed_everything(project.seed)
        tokenizer, model = starting_model(project, stage, config, resume_dir, device, ranks, phases)
        check_fits(project, stage, model, device, precision.name, ranks.world_size)
        dev.broadcast_parameters(model)
        phases.begin("datasets", f"loading the {stage} datasets")
        seed_everything(project.seed + ranks.rank)  # dropout differs between ranks
        ctx = ObjectiveContext(
            project=project,
            stage=stage,
            config=config,
            tokenizer=tokenizer,
            model=model,
            device=device,
            precision=precision,
            seed=project.seed,
            run_dir=run_dir,
            rank=ranks.rank,
            world_size=ranks.world_size,
            resume_dir=resume_dir,
            log=lambda message, level="info": emit(log(message, level)),
            progress=phases.progress,
        )
        objective = build_objective(ctx)
        if resume_dir is not None:
            phases.begin("resume", f"resuming from {resume_dir.name}: loading the optimizer and data position")
        state = load_trainer_state(resume_dir) if resume_dir is not None else None
        if folder is not None and state is not None:
            folder.record(project, state["step"], emit)
        poll = folder.control(control) if folder is not None else control
        return Trainer(ctx, objective, emit if ranks.is_main else None, poll, state).run()
    finally:
        if objective is not None:
            objective.close()
        if reporter is not None:
            reporter.close()
        if folder is not None:
            folder.lock.release()


@dataclass
class RunFolder:
    """The run folder rank 0 trains into, locked for the life of the run, and what it resumes."""

    run_dir: Path
    lock: RunLock
    checkpoint: Path | None = None  # the checkpoint a resume continues from
    changes: dict = field(default_factory=dict)  # settings a resume changed: {key: (old, new)}

    @classmethod
    def open(cls, project, stage: str, resume: bool | str | Path) -> RunFolder:
        """A new locked run folder, or the one to resume, locked, checked and cleaned (see resume.py)."""
        if not resume:
            run_dir = create_run_dir(project, stage)
            folder = cls(run_dir, RunLock(run_dir).acquire())
            save_project(project, run_dir)
            return folder
        run_dir = resume_run_dir(project, stage, resume)
        folder = cls(run_dir, RunLock(run_dir).acquire())  # a live run is refused, naming its process
        try:
            remove_temporaries(run_dir)
            trained = trained_settings(run_dir)
            folder.changes = resume_changes(trained, project_to_dict(project), stage) if trained else {}
            folder.checkpoint = _resume_checkpoint(run_dir, stage, project.stage(stage).steps)
        except BaseException:
            folder.lock.release()
            raise
        return folder

    def record(self, project, step: int, emit: Callable[[dict], None]) -> None:
        """Write this resume into the run folder and say what it changed."""
        record_resume(self.run_dir, project, step, self.changes)
        if self.changes:
            said = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in self.changes.items())
            emit(log(f"resume at step {step}: applied {said} (recorded in {RESUMES_FILE})"))

    def control(self, queue_poll: Callable[[], str | None]) -> Callable[[], str | None]:
        """The queue's control messages, then the requests other processes left in the run folder."""
        pending: deque[str] = deque()

        def poll() -> str | None:
            command = queue_poll()
            if command is None and not pending:
                pending.extend(take_requests(self.run_dir))
            return command or (pending.popleft() if pending else None)

        return poll


def _resume_checkpoint(run_dir: Path, stage: str, steps: int) -> Path:
    """The checkpoint to continue from; a completed run's final/ becomes its step checkpoint first."""
    checkpoint = resume_point(run_dir)
    if checkpoint is None:
        raise LLMLabError(
            Problem(
                "--resume",
                f"{run_dir.name} has no checkpoint with a {TRAINER_STATE} to "
                "resume from (it ended before its first save)",
            )
        )
    if checkpoint.name != FINAL:
        return checkpoint
    done = load_trainer_state(checkpoint)["step"]
    if steps <= done:
        raise LLMLabError(
            Problem(
                f"{stage}.steps",
                f"{run_dir.name} completed all {done} steps; continuing it "
                f"needs more (e.g. --set {stage}.steps={2 * done})",
            )
        )
    kept = run_dir / step_name(done)
    if kept.exists():
        shutil.rmtree(checkpoint)
    else:
        os.replace(checkpoint, kept)  # the old final stays, as the checkpoint of its step
    return kept


def starting_model(
    project, stage: str, config, resume_dir: Path | None, device, ranks: dev.Distributed, phases: Phases | None = None
):
    """(tokenizer, model on device): the resumed checkpoint's weights, the stage's `init`, or new."""
    phases = phases or Phases(None)
    if resume_dir is not None and model_kind(resume_dir) not in (None, ADAPTER):
        source = resume_dir
    elif isinstance(config, FineTuneConfig):  # every stage after pretrain starts from other weights
        source = resolve_init(project, config.init, f"{stage}.init")
    else:
        if ranks.is_main:  # a project BPE is trained once, by rank 0, then read by the others
            phases.begin("tokenizer", _tokenizer_phase(project))
            project_tokenizer(project)
        dev.barrier()
        tokenizer = project_tokenizer(project)
        phases.begin("model", f"building the model ({project.model.n_layers} layers, d_model {project.model.d_model})")
        return tokenizer, build_model(project, tokenizer).to(device)
    phases.begin("tokenizer", f"loading the tokenizer of {source}")
    tokenizer = load_tokenizer(str(source))
    phases.begin("model", f"loading the starting weights from {source}")
    return tokenizer, merged_start(load_model(source, device))


def _tokenizer_phase(project) -> str:
    source = project.tokenizer.source
    if source == "bpe" and not project_tokenizer_file(project.root).is_file():
        return f"training the project's BPE tokenizer (vocab {project.tokenizer.vocab_size:,}) on its text"
    return f"loading the tokenizer ({'the project BPE' if source == 'bpe' else source})"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
