"""TensorBoard: event files in the run folder's `tensorboard/` (`tensorboard --logdir projects/NAME/runs`)."""

from __future__ import annotations

from pathlib import Path

from engine.project.schema import Project

LOG_DIR = "tensorboard"


class TensorBoardTracker:
    def __init__(self, project: Project, stage: str, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(run_dir / LOG_DIR))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, failed: bool) -> None:
        self.writer.close()
