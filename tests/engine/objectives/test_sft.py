"""SFT: labels per token, truncation and packing, learning a format that stops, LoRA adapters only."""

import random

import pytest
import torch

from engine.chat_template import IGNORE
from engine.objectives.sft import SFTObjective
from engine.project.problems import LLMLabError
from tests.engine.objectives.helpers import WORDS, train

TOKEN = {word: i for i, word in enumerate(WORDS)}
IM_START, IM_END = len(WORDS), len(WORDS) + 1  # the ChatML tokens the objective adds


def ids(*words):
    return [TOKEN[w] for w in words]


def pick_rows(n, seed=0):
    """'pick a b' → 'say b': a fixed reply format around the prompt's second digit."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        rows.append({"prompt": f"pick {a} {b}", "completion": f"say {b}"})
    return rows


SETTINGS = dict(
    steps=4,
    batch_size=2,
    seq_len=32,
    lr=3e-3,
    warmup_steps=0,
    scheduler={"name": "none"},
    optimizer={"name": "adamw", "weight_decay": 0.0},
)
ONE_ROW = [{"prompt": "pick 3", "completion": "say 3"}] * 10
CONVERSATION = [IM_START, *ids("user", "pick", "3"), IM_END, IM_START, *ids("assistant", "say", "3"), IM_END]


def sft(make_context, rows, **fields):
    ctx = make_context("sft", rows, **{**SETTINGS, **fields})
    return ctx, SFTObjective(ctx)


def test_labels_cover_the_reply_and_its_end_of_turn_token_by_token(make_context):
    _, objective = sft(make_context, ONE_ROW)
    batch = objective.next_batch()
    assert batch["input_ids"].tolist() == [CONVERSATION, CONVERSATION]
    assert batch["labels"][0].tolist() == [IGNORE] * 7 + ids("say", "3") + [IM_END]
    assert batch["tokens"] == 20 and batch["truncated"] == 0


def test_all_tokens_option(make_context):
    _, objective = sft(make_context, ONE_ROW, assistant_only=False)
    assert objective.next_batch()["labels"][0].tolist() == CONVERSATION


def test_truncation_is_counted_and_a_context_without_replies_is_refused(make_context):
    _, objective = sft(make_context, ONE_ROW, seq_len=8)
    batch = objective.next_batch()
    assert batch["labels"][0].tolist() == [IGNORE] * 7 + ids("say")
    assert batch["truncated"] == 1.0
    assert objective.evaluate()["truncated_total"] == 2.0
    _, objective = sft(make_context, ONE_ROW, seq_len=6)
    with pytest.raises(
        LLMLabError,
        match=r"sft.seq_len: conversations are cut before their first assistant token "
        r"at 6 tokens; raise seq_len",
    ):
        objective.next_batch()


def test_packing_puts_whole_conversations_into_rows(make_context):
    _, objective = sft(make_context, ONE_ROW, packing=True, seq_len=25)
    batch = objective.next_batch()
    assert batch["input_ids"].tolist() == [CONVERSATION * 2, CONVERSATION * 2]
    assert batch["labels"][0].tolist() == ([IGNORE] * 7 + ids("say", "3") + [IM_END]) * 2
    state = objective.state_dict()
    assert len(state["leftover"]) == 1  # the third row packed so far waits for the next batch
    again = objective.next_batch()
    objective.load_state_dict(state)
    assert torch.equal(objective.next_batch()["input_ids"], again["input_ids"])


def test_sft_learns_the_reply_format_and_stops_at_the_end_of_the_turn(make_context):
    ctx, objective = sft(make_context, pick_rows(120), steps=80, batch_size=8, eval_batches=3)
    before = objective.evaluate()["loss"]
    metrics = train(ctx, objective)
    after = objective.evaluate()["loss"]
    assert after < before / 3, (before, after)
    assert metrics[-1]["trainable_params"] == metrics[-1]["total_params"] > 0
    objective.module.eval()
    with torch.no_grad():
        prompt = [{"role": "user", "content": "pick 7 2"}]  # not a training row: the rows' a, b come from seed 0
        assert {"prompt": "pick 7 2", "completion": "say 2"} not in pick_rows(96)
        reply = objective.answer(prompt)
        full = objective.module.generate(
            input_ids=torch.tensor([[IM_START, *ids("user", "pick", "7", "2"), IM_END, IM_START, TOKEN["assistant"]]]),
            max_new_tokens=10,
            do_sample=False,
        )
    assert reply.split()[0] == "say" and len(reply.split()) == 2 and reply.split()[1].isdigit(), reply
    assert full[0, -1].item() == IM_END and full.shape[1] < 7 + 10  # stopped at its end-of-turn token


def test_lora_sft_changes_adapter_weights_only_and_saves_adapters(make_context, tmp_path):
    ctx, objective = sft(make_context, pick_rows(20), lora={"enabled": True, "preset": "all", "dropout": 0.0})
    before = {name: p.detach().clone() for name, p in objective.module.named_parameters()}
    metrics = train(ctx, objective)
    assert 0 < metrics[-1]["trainable_params"] < metrics[-1]["total_params"]
    for name, param in objective.module.named_parameters():
        adapter = "lora_" in name or "trainable_tokens" in name
        assert param.requires_grad == adapter, name
        if not adapter:
            assert torch.equal(before[name], param), f"{name} is not an adapter weight but changed"
    assert all(not torch.equal(before[n], p) for n, p in objective.module.named_parameters() if "lora_B" in n)
    assert objective.save(tmp_path)
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()


def sft_project(tmp_path):
    """A pretrained tiny project (bytes tokenizer, no chat template) with a LoRA [sft] stage."""
    import tomllib

    import tomli_w

    from engine import worker
    from tests.engine.objectives.helpers import write_jsonl
    from tests.tiny_project import make_project

    root = make_project(tmp_path / "p", steps=3, eval_every=0)
    data = tomllib.loads((root / "project.toml").read_text())
    data["sft"] = {
        "init": "pretrain",
        "steps": 6,
        "batch_size": 2,
        "seq_len": 48,
        "lr": 1e-2,
        "warmup_steps": 0,
        "eval_every": 3,
        "eval_batches": 1,
        "sample_every": 3,
        "save_every": 3,
        "sample_prompt": "pick 1 2",
        "datasets": [{"path": write_jsonl(root / "sft.jsonl", pick_rows(30)), "eval_fraction": 0.1}],
        "lora": {"enabled": True, "preset": "all", "dropout": 0.1},
    }
    (root / "project.toml").write_text(tomli_w.dumps(data))
    worker.run(root, "pretrain")
    return root


def test_lora_sft_run_resumes_exactly_and_merges_into_a_chat_model(tmp_path, capsys):
    import shutil

    from engine import worker
    from engine.cli import main
    from engine.project import load_project
    from engine.project.runs import latest_run
    from tests.tiny_project import Recorder, StopAfter

    unbroken = sft_project(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(unbroken, broken)
    whole = Recorder()
    worker.run(unbroken, "sft", events=whole)
    first, second = Recorder(), Recorder()
    worker.run(broken, "sft", events=first, control=StopAfter(first, 4))
    worker.run(broken, "sft", events=second, resume=True)
    assert second.of("started")[0]["start_step"] == 4
    expected = [e["loss"] for e in whole.of("metrics")]
    assert [e["loss"] for e in first.of("metrics") + second.of("metrics")] == pytest.approx(expected, abs=1e-5)
    assert whole.of("sample")[-1]["samples"] == second.of("sample")[-1]["samples"]
    assert whole.of("sample")[-1]["samples"][0]["prompt"] == "pick 1 2"

    final = latest_run(load_project(unbroken), "sft") / "final"
    assert (final / "adapter_model.safetensors").is_file() and not (final / "model.safetensors").exists()
    assert main(["merge", str(final)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "generate",
                str(final.with_name("final-merged")),
                "--chat",
                "--prompt",
                "pick 1 2",
                "--max-new-tokens",
                "4",
                "--temperature",
                "0",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out
