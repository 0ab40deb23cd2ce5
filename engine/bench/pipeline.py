"""`llmlab bench pipeline [--fast] [--dir DIR] [--json]`: the demo end to end, with proof per stage.

A fresh copy of the demo project (engine/project/templates/demo.toml) runs pretrain → SFT → DPO → GRPO,
and PPO from the same SFT model, each stage through `engine.worker.run` (what `llmlab run`
calls). The table gives each stage's wall time and the held-out measure that shows it worked,
before (the stage's starting point) and after:

- pretrain: validation loss against the uniform baseline ln V (V = the tokenizer's vocabulary);
- SFT: held-out assistant loss, and the share of greedy answers to held-out questions that start
  with the trained answer sentence ("The answer is X.", engine.demo_data.answer_start), and the
  share whose X is right;
- DPO: held-out preference accuracy against chance (0.5);
- GRPO, PPO: held-out reward of greedy answers (exact match, plus half a point for a terse reply
  without the SFT data's pleasantry), before = the SFT model.

"Before" is measured by the stage's own objective built on the starting model, outside a run,
so before and after are the same measure on the same held-out rows. `--fast` is the same
pipeline with a few steps per stage (FAST: --set overrides); the test suite runs it.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.bench import common

STAGES = ("pretrain", "sft", "dpo", "grpo", "ppo")  # in order; PPO starts from the SFT model too
ANSWERS = 64  # held-out SFT questions answered greedily for the format share
FAST_ANSWERS = 16
ANSWER_TOKENS = 24  # "The answer is Brightwater." and its end of turn fit well within this

FAST = {  # --fast: fewer steps per stage (enough for each measure to move), one evaluation, no samples
    "pretrain": {"steps": 150, "batch_size": 8, "seq_len": 64, "warmup_steps": 5, "eval_every": 150, "eval_batches": 4},
    "sft": {"steps": 100, "batch_size": 8, "warmup_steps": 5, "eval_every": 100, "eval_batches": 4},
    "dpo": {"steps": 10, "batch_size": 8, "warmup_steps": 2, "eval_every": 10, "eval_batches": 4},
    "grpo": {"steps": 20, "batch_size": 4, "mini_batch_size": 16, "eval_every": 20},
    "ppo": {"steps": 20, "batch_size": 4, "mini_batch_size": 4, "eval_every": 20},
}


@dataclass(frozen=True)
class Measure:
    """One held-out measure of a stage: its value before and after, and which way is better."""

    stage: str
    name: str
    before: float
    after: float
    higher_is_better: bool

    @property
    def improved(self) -> bool:
        return self.after > self.before if self.higher_is_better else self.after < self.before


def register(subparsers) -> None:
    parser = subparsers.add_parser("pipeline", help="the demo end to end: every stage's wall time and held-out proof")
    parser.add_argument("--fast", action="store_true", help="a few steps per stage (the test suite's variant)")
    parser.add_argument("--dir", type=Path, help="keep the demo copy (DIR/demo-pipeline) instead of a temporary one")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=main)


def stage_overrides(stage: str, fast: bool) -> list[str]:
    """The --set lines of `stage`'s run: none for the real demo, FAST's for --fast."""
    if not fast:
        return []
    return [f"{stage}.{key}={json.dumps(value)}" for key, value in FAST[stage].items()] + [f"{stage}.sample_every=0"]


def run_pipeline(directory: str | Path, fast: bool = False, device: str = "cpu", progress=None) -> dict:
    """Create DIR/demo-pipeline from the demo template, run every stage, measure it.

    Returns {"measures": [Measure as dict], "seconds": {stage: s}, "total_seconds", "project",
    "fast"}. `progress(line)` is told each stage's result as it ends.
    """
    from engine.project import new_project
    from engine.worker import run

    project_dir = new_project("demo-pipeline", "demo", directory)
    say = progress or (lambda line: None)
    measures, seconds, start = [], {}, time.perf_counter()
    for stage in STAGES:
        sets = stage_overrides(stage, fast)
        began = time.perf_counter()
        report = run(project_dir, stage, sets, device=device)
        seconds[stage] = time.perf_counter() - began
        found = MEASURES[stage](
            StageRun(project_dir, stage, sets, device, FAST_ANSWERS if fast else ANSWERS), report["eval"]
        )
        measures += found
        say(
            f"{stage}: {_duration(seconds[stage])}; "
            + "; ".join(f"{m.name} {m.before:.3f} → {m.after:.3f}" for m in found)
        )
    return {
        "measures": [asdict(m) for m in measures],
        "seconds": seconds,
        "total_seconds": time.perf_counter() - start,
        "project": str(project_dir),
        "fast": fast,
    }


@dataclass(frozen=True)
class StageRun:
    """A finished stage of the pipeline, as its measures see it."""

    project_dir: Path
    stage: str
    sets: list[str]  # the --set lines the stage ran with
    device: str
    answers: int  # held-out SFT questions to answer for the format share

    def objective(self, weights: str):
        """This stage's objective on the final model of the newest `weights` run, outside any run,
        in eval mode: its `evaluate()` measures that model as the stage's runs measure theirs."""
        import torch

        from engine.device import pick_precision
        from engine.factory import load_model
        from engine.objectives import build_objective
        from engine.objectives.base import ObjectiveContext
        from engine.project import load_project
        from engine.project.runs import resolve_init
        from engine.tokenizer import load_tokenizer

        project = load_project(self.project_dir, self.sets)
        model_dir, device = resolve_init(project, weights), torch.device(self.device)
        ctx = ObjectiveContext(
            project=project,
            stage=self.stage,
            config=project.stage(self.stage),
            tokenizer=load_tokenizer(str(model_dir)),
            model=load_model(model_dir, device),
            device=device,
            precision=pick_precision(device)[0],
            seed=project.seed,
        )
        objective = build_objective(ctx)
        objective.module.eval()
        return objective


# -- the measures of each stage ----------------------------------------------------------------


def pretrain_measures(run: StageRun, after: dict) -> list[Measure]:
    """Validation loss against ln V, the loss of a uniform guess over the tokenizer's V tokens."""
    from engine.project import load_project
    from engine.project.runs import resolve_init
    from engine.tokenizer import load_tokenizer

    vocab = len(load_tokenizer(str(resolve_init(load_project(run.project_dir, run.sets), "pretrain"))))
    return [Measure("pretrain", "validation loss vs ln V", math.log(vocab), after["loss"], False)]


def sft_measures(run: StageRun, after: dict) -> list[Measure]:
    """Assistant loss and the answers' shares: the pretrained model's against the SFT model's."""
    import torch

    with torch.no_grad():
        start = run.objective("pretrain")
        loss_before, shares_before = start.evaluate()["loss"], answer_shares(start, run.answers)
        shares_after = answer_shares(run.objective("sft"), run.answers)
    return [
        Measure("sft", "assistant loss", loss_before, after["loss"], False),
        Measure("sft", "answers start in format", shares_before[0], shares_after[0], True),
        Measure("sft", "answers right", shares_before[1], shares_after[1], True),
    ]


def dpo_measures(run: StageRun, after: dict) -> list[Measure]:
    """Held-out preference accuracy against chance (the starting policy is its own reference)."""
    return [Measure("dpo", "preference accuracy vs chance", 0.5, after["accuracy"], True)]


def rl_measures(run: StageRun, after: dict) -> list[Measure]:
    """Held-out reward of greedy answers: the SFT model's against the trained policy's."""
    import torch

    with torch.no_grad():
        before = run.objective("sft").evaluate()
    return [Measure(run.stage, "reward (right + terse)", before["reward"], after["reward"], True)]


MEASURES = {
    "pretrain": pretrain_measures,
    "sft": sft_measures,
    "dpo": dpo_measures,
    "grpo": rl_measures,
    "ppo": rl_measures,
}


def answer_shares(objective, count: int) -> tuple[float, float]:
    """(share starting with the trained answer sentence, share whose answer is right) of greedy
    answers to held-out SFT questions."""
    from engine.demo_data import answer_start

    in_format = right = 0
    exchanges = [first_exchange(c) for c in objective.stream.heldout(count)]
    for prompt, expected in exchanges:
        answer = answer_start(objective.answer(prompt, max_new_tokens=ANSWER_TOKENS))
        in_format += answer is not None
        right += answer is not None and answer == answer_start(expected)
    return in_format / len(exchanges), right / len(exchanges)


def first_exchange(conversation: list[dict]) -> tuple[list[dict], str]:
    """(the turns before the first assistant turn, that turn's content)."""
    index = [m["role"] for m in conversation].index("assistant")
    return conversation[:index], conversation[index]["content"]


# -- output -------------------------------------------------------------------------------------


def table(result: dict) -> str:
    """The pipeline's table: per stage its time, then each measure before → after."""
    lines = [f"{'stage':<9} {'time':>6}  {'held-out measure':<32} {'before':>7} {'after':>7}  improved"]
    shown = set()
    for m in map(lambda d: Measure(**d), result["measures"]):
        time_cell = "" if m.stage in shown else _duration(result["seconds"][m.stage])
        shown.add(m.stage)
        lines.append(
            f"{m.stage if time_cell else '':<9} {time_cell:>6}  {m.name:<32} {m.before:7.3f} "
            f"{m.after:7.3f}  {'yes' if m.improved else 'no'}"
        )
    lines.append(f"{'total':<9} {_duration(result['total_seconds']):>6}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def main(args) -> int:
    import datasets
    import transformers

    datasets.disable_progress_bars()  # the pipeline reports each stage as one line
    transformers.utils.logging.disable_progress_bar()
    if args.dir is not None:
        result = run_pipeline(args.dir, args.fast, args.device, _progress)
    else:
        with tempfile.TemporaryDirectory(prefix="llmlab-pipeline-") as tmp:
            result = run_pipeline(tmp, args.fast, args.device, _progress)
    import torch

    result["machine"] = common.machine(torch.device(args.device))
    improved = all(Measure(**m).improved for m in result["measures"])
    return common.report(
        args,
        result,
        table(result),
        f"pipeline{' (--fast)' if args.fast else ''}: {_duration(result['total_seconds'])}, "
        f"every held-out measure improved: {'yes' if improved else 'no'}",
    )


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
