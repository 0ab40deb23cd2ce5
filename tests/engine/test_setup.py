"""Every stage after pretraining trains from every kind of starting model, with LoRA and without.

The matrix of issue #13: sft, dpo, ppo, grpo × init (a full run, an un-merged LoRA run, its merged
folder) × LoRA on/off. The starting model comes through `starting_model`, as in a run; two
optimizer steps later a full stage has changed every weight (all of them trainable), a LoRA
stage only its new adapters (and, in PPO, the value head).
"""

from __future__ import annotations

import pytest
import torch

from engine import device as dev
from engine.device import Precision
from engine.factory import build_model
from engine.lora import apply_lora, merge
from engine.objectives import build_objective
from engine.objectives.base import ObjectiveContext
from engine.project import LoraConfig, project_from_dict
from engine.setup import starting_model
from tests.engine.objectives.helpers import DIGITS_DIR, digit_tokenizer, train, write_jsonl

MODEL = {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64, "max_seq_len": 64}
COMMON = dict(
    steps=2,
    lr=1e-2,
    warmup_steps=0,
    eval_every=0,
    sample_every=0,
    scheduler={"name": "none"},
    optimizer={"name": "adamw", "weight_decay": 0.0},
)
ROLLOUT = dict(max_new_tokens=3, temperature=1.0, reward_rules=[{"name": "regex", "pattern": "[0-4]"}])
STAGES = {
    "sft": (
        [{"prompt": f"pick {d} 3", "completion": f"say {d}"} for d in range(10)] * 2,
        dict(batch_size=2, seq_len=32),
    ),
    "dpo": ([{"prompt": f"pick {d}", "chosen": "1", "rejected": "8"} for d in range(10)] * 2, dict(batch_size=2)),
    "ppo": (
        [{"prompt": "say 3", "answer": "3"}] * 20,
        dict(ROLLOUT, batch_size=8, mini_batch_size=8, epochs=1, kl_coef=0.05),
    ),
    "grpo": (
        [{"prompt": "say 3", "answer": "3"}] * 20,
        dict(ROLLOUT, batch_size=2, group_size=8, mini_batch_size=16, epochs=1, kl_coef=0.05),
    ),
}


@pytest.fixture(scope="module")
def inits(tmp_path_factory):
    """{kind: folder}: a full model, an un-merged LoRA run on it (adapters trained), its merge."""
    root = tmp_path_factory.mktemp("inits")
    tokenizer = digit_tokenizer()
    tokenizer.save_pretrained(root / DIGITS_DIR)
    project = project_from_dict({"seed": 0, "tokenizer": {"source": DIGITS_DIR}, "model": MODEL}, root)
    torch.manual_seed(0)
    model = build_model(project, tokenizer)
    model.save_pretrained(root / "full")
    tokenizer.save_pretrained(root / "full")
    model.name_or_path = str(root / "full")
    adapted = apply_lora(model, LoraConfig(enabled=True, preset="all", dropout=0.0))
    with torch.no_grad():  # trained adapters: the merged weights differ from the base
        for name, param in adapted.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    adapted.save_pretrained(root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    merged = merge(root / "adapter").out_dir
    return {"full": root / "full", "adapter": root / "adapter", "merged": merged}


def context(tmp_path, stage: str, init, lora: bool) -> ObjectiveContext:
    rows, fields = STAGES[stage]
    digit_tokenizer().save_pretrained(tmp_path / DIGITS_DIR)
    data = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
    table = dict(COMMON, **fields, init=str(init), datasets=[{"path": data, "eval_fraction": 0.1}])
    table["lora"] = {"enabled": lora, "preset": "minimal", "dropout": 0.0}
    settings = {"seed": 0, "tokenizer": {"source": DIGITS_DIR}, "model": MODEL, stage: table}
    project = project_from_dict(settings, tmp_path)
    config = project.stage(stage)
    torch.manual_seed(0)
    tokenizer, model = starting_model(project, stage, config, None, torch.device("cpu"), dev.Distributed())
    return ObjectiveContext(
        project=project,
        stage=stage,
        config=config,
        tokenizer=tokenizer,
        model=model,
        device=torch.device("cpu"),
        precision=Precision("fp32", "cpu"),
        seed=0,
    )


def is_adapter(name: str) -> bool:
    return "lora_" in name or "trainable_tokens" in name or name.startswith("value_head.")


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("init", ["full", "adapter", "merged"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_trains_from_every_starting_model(inits, tmp_path, stage, init, lora):
    ctx = context(tmp_path, stage, inits[init], lora)
    objective = build_objective(ctx)
    module = objective.module
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    metrics = train(ctx, objective)
    assert len(metrics) == COMMON["steps"]
    changed = {name for name, p in module.named_parameters() if not torch.equal(p, before[name])}
    if lora:
        assert trainable == {name for name in before if is_adapter(name)}
        lora_weights = {name for name in before if "lora_" in name}
        assert lora_weights and lora_weights <= changed <= trainable
    else:
        assert trainable == set(before)  # every base weight trains again after an adapter merge
        assert changed == trainable


def test_a_run_tells_each_preparation_phase_in_order_with_progress(tmp_path):
    from engine import worker
    from tests.tiny_project import Recorder, StopAfter, make_project

    project = make_project(tmp_path / "p", steps=4, eval_every=0)
    first = Recorder()
    worker.run(project, "pretrain", events=first, control=StopAfter(first, 2))
    kinds = [e["type"] if e["type"] != "phase" else e["name"] for e in first]
    begun = [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]]
    assert begun[:7] == ["worker", "tokenizer", "model", "datasets", "started", "first step", "metrics"]
    tokenized = [e for e in first.of("phase") if e.get("done") is not None]
    train = [e for e in tokenized if e["message"] == "tokenizing corpus.txt"]
    assert train[0]["done"] == 0 and train[-1]["done"] == train[-1]["total"] == 270  # 300 paragraphs, 10% held out
    assert {e["unit"] for e in tokenized} == {"documents"}
    assert any(e["message"] == "tokenizing corpus.txt (held out)" for e in tokenized)

    resumed = Recorder()
    worker.run(project, "pretrain", events=resumed, resume=True)
    names = [e["name"] for e in resumed.of("phase")]
    assert names.index("datasets") < names.index("resume") < names.index("first step")
