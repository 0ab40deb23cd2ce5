"""Weights & Biases: one W&B run per run folder (its id, so a resumed run continues it), in the W&B
project named after the LLM-Lab project. Its files go under WANDB_DIR when set, else the run folder;
WANDB_MODE=offline keeps them local (`wandb sync` uploads them later)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.project import project_to_dict
from engine.project.schema import Project


def run_id(project: Project, run_dir: Path) -> str:
    """A W&B run id (letters, digits, - and _) unique to the run folder."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{project.name}-{run_dir.name}")


class WandbTracker:
    def __init__(self, project: Project, stage: str, run_dir: Path):
        import wandb

        self.run = wandb.init(
            project=project.name,
            name=run_dir.name,
            id=run_id(project, run_dir),
            resume="allow",
            dir=os.environ.get("WANDB_DIR") or str(run_dir),
            config={"stage": stage, **project_to_dict(project)},
        )

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def finish(self, failed: bool) -> None:
        import wandb

        self.run.finish(exit_code=1 if failed else 0)
        wandb.teardown()  # waits until W&B's service has written (or uploaded) everything: finish alone may not
