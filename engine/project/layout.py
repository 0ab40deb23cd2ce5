"""Where a project's files live: the names every part of LLM-Lab uses for them (no torch, no I/O
beyond looking).

    <project>/project.toml           the configuration (PROJECT_FILE)
    <project>/tokenizer/             the project's own BPE (TOKENIZER_DIR, TOKENIZER_FILE inside)
    <project>/runs/<stage>-<stamp>/  a run (RUNS_DIR; engine.project.runs names and lists them)
        metrics.jsonl                every event of the run (METRICS_FILE)
        run.lock                     held by the process training it (LOCK_FILE, run_lock.py)
        control/                     stop / save requests from other processes (CONTROL_DIR)
        step-000200/, final/         checkpoints (step_name(step), FINAL), each a model directory
        final-merged/                LoRA adapters baked into a full model (MERGED_SUFFIX)
    <model directory>/eval/results.json  its lm-eval scores (EVAL_DIR, EVAL_RESULTS: eval_results.py)
    <any output folder>/.llmlab-output.json  what wrote it (OUTPUT_MARKER; outputs.py's rules)

A model directory is one of three kinds (`model_kind`): FULL (config.json + weights),
ADAPTER (LoRA adapters only: adapter_config.json, loaded on the base model it names) or
MERGED (a full model written by merging an adapter directory).
"""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_FILE = "project.toml"
RUNS_DIR = "runs"
METRICS_FILE = "metrics.jsonl"
LOCK_FILE = "run.lock"
CONTROL_DIR = "control"
RESUMES_FILE = "resumes.jsonl"
TOKENIZER_DIR = "tokenizer"
TOKENIZER_FILE = "tokenizer.json"
FINAL = "final"
TRAINER_STATE = "trainer_state.pt"
OPTIMIZER_DCP = "optimizer.dcp"  # a sharded run's optimizer state, one file per rank (engine/sharding.py)
MODEL_CONFIG = "config.json"
ADAPTER_CONFIG = "adapter_config.json"
MERGED_SUFFIX = "-merged"  # merging `<dir>` writes the sibling `<dir>-merged` unless told otherwise
OUTPUT_MARKER = ".llmlab-output.json"  # what wrote an output folder (--out): engine.project.outputs
EVAL_DIR = "eval"  # beside a model's weights: what `llmlab eval` measured (engine.project.eval_results)
EVAL_RESULTS = "results.json"

FULL, ADAPTER, MERGED = "full", "adapter", "merged"
STEP_NAME = re.compile(r"^step-(\d+)$")


def step_name(step: int) -> str:
    """The checkpoint directory of a step: zero-padded so names sort by step."""
    return f"step-{step:06d}"


def merged_dir(adapter_dir: Path) -> Path:
    """Where merging an adapter directory writes by default."""
    return adapter_dir.with_name(f"{adapter_dir.name}{MERGED_SUFFIX}")


def model_kind(path: str | Path) -> str | None:
    """FULL, MERGED or ADAPTER for a model directory; None when `path` is not one."""
    path = Path(path)
    if (path / MODEL_CONFIG).is_file():
        return MERGED if path.name.endswith(MERGED_SUFFIX) else FULL
    if (path / ADAPTER_CONFIG).is_file():
        return ADAPTER
    return None


def project_tokenizer_file(root: Path) -> Path:
    """The trained BPE's tokenizer.json inside a project directory."""
    return root / TOKENIZER_DIR / TOKENIZER_FILE
