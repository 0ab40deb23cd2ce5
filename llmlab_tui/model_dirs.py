"""The model directories of a project, as the chat and tools screens offer them: every checkpoint
of every run (runs/*/step-NNNNNN/, runs/*/final/) and every merged copy beside one (*-merged/),
each marked full or adapter. Plain functions, no Textual, no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.project import Project
from engine.project.layout import ADAPTER, MERGED_SUFFIX, model_kind
from engine.project.runs import checkpoints, list_runs


@dataclass(frozen=True)
class ModelDir:
    path: Path
    label: str  # "<run>/<checkpoint>", relative to runs/
    adapter: bool  # LoRA adapters only (loaded on their base model)

    @property
    def title(self) -> str:
        return f"{self.label} (adapter)" if self.adapter else self.label


def model_dirs(project: Project) -> list[ModelDir]:
    """Every model directory of the project's runs, newest run first, each run's last step first."""
    found = []
    for run in reversed(list_runs(project)):
        merged = sorted(p for p in run.glob(f"*{MERGED_SUFFIX}") if p.is_dir())
        for path in [*merged, *reversed(checkpoints(run))]:
            kind = model_kind(path)
            if kind is not None:
                found.append(ModelDir(path, f"{run.name}/{path.name}", kind == ADAPTER))
    return found


def has_chat_template(path: Path) -> bool:
    """Whether the directory's tokenizer carries a chat template (then chat mode is the default)."""
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    config = path / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False
