"""The one loop: accumulation scaling, clipping, stop and save, resume equality, retention, events."""

from __future__ import annotations

import shutil

import pytest
import torch

from engine import worker
from engine.checkpoints import TRAINER_STATE
from engine.events import read_events
from engine.objectives import build_objective
from engine.project import OPTIMIZER_DEFAULTS, load_project
from engine.project.problems import LLMLabError
from engine.project.runs import METRICS_FILE, list_runs
from engine.trainer import Trainer
from tests.engine.pretrain_context import pretrain_context
from tests.tiny_project import Recorder, StopAfter, make_project


def make_trainer(directory, emit=None, control=None, **pretrain) -> Trainer:
    project = load_project(make_project(directory, **pretrain))
    ctx = pretrain_context(project, run_dir=directory / "run")
    return Trainer(ctx, build_objective(ctx), emit, control)


def gradients(trainer: Trainer) -> list[torch.Tensor]:
    return [p.grad.clone() for p in trainer.params]


def test_k_micro_batches_of_b_give_the_gradient_of_one_batch_of_kb(tmp_path):
    # packed rows are consecutive: two micro-batches of 2 rows are the one batch of 4 rows
    accumulated = make_trainer(tmp_path / "a", batch_size=2, grad_accum=2)
    whole = make_trainer(tmp_path / "b", batch_size=4, grad_accum=1)
    loss_a, _, tokens_a, _ = accumulated.accumulate()
    loss_b, _, tokens_b, _ = whole.accumulate()
    assert tokens_a == tokens_b == 4 * 32
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=1e-6)
    for a, b in zip(gradients(accumulated), gradients(whole), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_clipping_caps_the_norm_and_reports_the_norm_before(tmp_path):
    trainer = make_trainer(tmp_path, grad_clip=0.05)
    trainer.accumulate()
    before = torch.nn.utils.get_total_norm([p.grad for p in trainer.params])
    reported = trainer.clip_gradients()
    after = torch.nn.utils.get_total_norm([p.grad for p in trainer.params])
    assert before > 0.5  # a fresh model's gradient is far above the cap
    torch.testing.assert_close(reported, before)
    torch.testing.assert_close(after, torch.tensor(0.05), rtol=1e-4, atol=0)


def test_no_clipping_when_grad_clip_is_zero(tmp_path):
    trainer = make_trainer(tmp_path, grad_clip=0.0)
    trainer.accumulate()
    before = gradients(trainer)
    norm = trainer.clip_gradients()
    torch.testing.assert_close(norm, torch.nn.utils.get_total_norm(before))
    for a, b in zip(before, gradients(trainer)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", list(OPTIMIZER_DEFAULTS))
def test_every_optimizer_lowers_the_loss_through_the_loop(tmp_path, name):
    events = Recorder()
    lr = {"lion": 3e-3, "muon": 2e-2, "adafactor": 1e-1}.get(name, 1e-2)
    trainer = make_trainer(
        tmp_path,
        emit=events.put,
        steps=25,
        eval_every=0,
        lr=lr,
        warmup_steps=2,
        optimizer={"name": name, **({"adamw_lr": 1e-2} if name == "muon" else {})},
    )
    report = trainer.run()
    losses = [e["loss"] for e in events.of("metrics")]
    assert len(losses) == 25 and report["steps"] == 25
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_stop_writes_a_checkpoint_then_finishes_stopped(tmp_path):
    events = Recorder()
    trainer = make_trainer(tmp_path, emit=events.put, control=StopAfter(events, 3).poll, steps=50)
    report = trainer.run()
    assert report["steps"] == 3
    checkpoint = events.of("checkpoint")[-1]
    assert checkpoint["path"].endswith("step-000003") and not checkpoint["final"]
    assert (tmp_path / "run" / "step-000003" / TRAINER_STATE).is_file()
    assert (tmp_path / "run" / "step-000003" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "step-000003" / "tokenizer.json").is_file()
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "stopped"


def test_save_writes_a_checkpoint_and_training_goes_on(tmp_path):
    events = Recorder()
    messages = iter([None, None, "save"])
    trainer = make_trainer(tmp_path, emit=events.put, control=lambda: next(messages, None), steps=5, eval_every=0)
    trainer.run()
    assert [e["step"] for e in events.of("checkpoint")] == [2, 5]
    assert (tmp_path / "run" / "step-000002").is_dir() and (tmp_path / "run" / "final").is_dir()
    assert events[-1]["status"] == "completed"


def test_retention_keeps_the_last_keep_last_step_checkpoints_and_final(tmp_path):
    trainer = make_trainer(tmp_path, steps=10, save_every=2, keep_last=2, eval_every=0)
    trainer.run()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["final", "step-000006", "step-000008"]


def test_out_of_memory_becomes_advice_to_lower_the_micro_batch(tmp_path):
    trainer = make_trainer(tmp_path, batch_size=8, grad_accum=2)

    def out_of_memory(batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    trainer.objective.loss = out_of_memory
    with pytest.raises(LLMLabError) as raised:
        trainer.run()
    assert raised.value.lines == [
        "pretrain.batch_size: CUDA ran out of memory with micro-batches of 8 × 32 tokens; lower "
        "pretrain.batch_size (or pretrain.seq_len) and raise pretrain.grad_accum to keep the global batch "
        "(e.g. batch_size = 4, grad_accum = 4)"
    ]


def test_metrics_jsonl_holds_every_event_and_the_report(tmp_path):
    project = make_project(tmp_path / "p", steps=6, eval_every=3, sample_every=3, save_every=3)
    events = Recorder()
    report = worker.run(project, "pretrain", events=events)
    [run_dir] = list_runs(load_project(project), "pretrain")
    assert read_events(run_dir / METRICS_FILE) == list(events)
    kinds = [e["type"] for e in events if e["type"] != "phase"]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.count("metrics") == 6 and kinds.count("eval") == 2 and kinds.count("sample") == 2
    metrics = events.of("metrics")[-1]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "step_time", "eta_s"} <= set(metrics)
    assert metrics["tokens_seen"] == 6 * 4 * 32
    evaluation = events.of("eval")[-1]
    assert evaluation["ppl"] == pytest.approx(torch.tensor(evaluation["loss"]).exp().item(), rel=1e-6)
    assert report["eval_loss"] == evaluation["loss"] and report["tokens_seen"] == 6 * 4 * 32
    assert (run_dir / "project.toml").is_file() and (run_dir / "final" / TRAINER_STATE).is_file()


def test_resumed_run_has_the_losses_of_an_unbroken_run(tmp_path):
    # dropout and samples draw random numbers: the RNG state has to come back as well
    fields = dict(steps=10, eval_every=3, sample_every=2, save_every=4, lr=1e-2)
    unbroken = make_project(tmp_path / "unbroken", **fields)
    broken = tmp_path / "broken"
    shutil.copytree(unbroken, broken)
    sets = ["model.dropout=0.1"]

    whole = Recorder()
    worker.run(unbroken, "pretrain", sets, events=whole)
    first = Recorder()
    worker.run(broken, "pretrain", sets, events=first, control=StopAfter(first, 5))
    assert first[-1]["status"] == "stopped"
    second = Recorder()
    worker.run(broken, "pretrain", sets, events=second, resume=True)
    assert second.of("started")[0]["start_step"] == 5 and second.of("started")[0]["resumed"]

    expected = [(e["step"], e["loss"]) for e in whole.of("metrics")]
    got = [(e["step"], e["loss"]) for e in first.of("metrics") + second.of("metrics")]
    assert [s for s, _ in got] == list(range(1, 11))
    for (_, a), (_, b) in zip(expected, got):
        assert abs(a - b) <= 1e-5, (expected, got)
    assert whole[-1]["report"]["eval_loss"] == pytest.approx(second[-1]["report"]["eval_loss"], abs=1e-5)
    assert whole.of("sample")[-1]["samples"] == second.of("sample")[-1]["samples"]
    assert len(list_runs(load_project(broken), "pretrain")) == 1  # resumed in place
