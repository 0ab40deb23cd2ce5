"""Trackio (Hugging Face's local-first tracker): a run named after the run folder in the Trackio
project named after the LLM-Lab project, stored in TRACKIO_DIR (default ~/.cache/huggingface/trackio);
`trackio show --project NAME` opens its dashboard."""

from __future__ import annotations

from pathlib import Path

from engine.project import project_to_dict
from engine.project.schema import Project


class TrackioTracker:
    def __init__(self, project: Project, stage: str, run_dir: Path):
        import trackio

        self.run = trackio.init(
            project=project.name,
            name=run_dir.name,
            resume="allow",
            config={"stage": stage, **project_to_dict(project)},
            auto_log_cpu=False,  # the run's own measures only: no background sampling thread
            auto_log_gpu=False,
        )

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def finish(self, failed: bool) -> None:
        self.run.finish()
