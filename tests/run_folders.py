"""Hand-written run folders for the tests of Compare (engine and app): a metrics.jsonl and the
project.toml a run trained with, no training."""

from __future__ import annotations

import json

import tomli_w


def write_run(directory, lr, encoding, losses, bpb):
    """A finished run folder: metrics every step, one eval at the end, its project.toml."""
    directory.mkdir(parents=True)
    events = [{"type": "started", "time": 100.0, "total_steps": len(losses)}]
    for step, loss in enumerate(losses, 1):
        events.append(
            {"type": "metrics", "time": 100.0 + step, "step": step, "loss": loss, "lr": lr, "tokens_seen": 128 * step}
        )
    events.append({"type": "eval", "time": 100.5 + len(losses), "step": len(losses), "loss": losses[-1], "bpb": bpb})
    events.append({"type": "finished", "time": 200.0, "status": "completed", "report": {}})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    config = {"name": "p", "seed": 1, "model": {"positional_encoding": encoding}, "pretrain": {"lr": lr, "steps": 3}}
    (directory / "project.toml").write_text(tomli_w.dumps(config))
    return directory


def write_scores(run_dir, **accuracy):
    """lm-eval scores of the run's final model, as `llmlab eval` stores them: {task: acc}."""
    from engine.project.eval_results import store_results

    tasks = {task: {"metrics": {"acc": acc, "acc_stderr": 0.01}, "samples": 10} for task, acc in accuracy.items()}
    return store_results(run_dir / "final", tasks)
