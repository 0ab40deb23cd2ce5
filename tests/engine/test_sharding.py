"""Sharded training: 2 gloo processes with parallel = "fsdp" train as 1 process with the global batch,
resume exactly (2 processes, and 2 → 1), and leave plain Hugging Face folders."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from engine import worker
from engine.checkpoints import load_trainer_state
from engine.events import read_events
from engine.factory import load_model
from engine.optim import build_optimizer
from engine.project import LLMLabError, load_project
from engine.project.layout import FINAL, LOCK_FILE, OPTIMIZER_DCP, step_name
from engine.project.runs import METRICS_FILE, list_runs
from engine.sharding import load_optimizer
from tests.engine.test_ddp import _free_port
from tests.tiny_project import make_project

# a constant rate (no schedule over the step count), so a 2-step run resumed to 4 is the 4-step run
FIELDS = dict(
    steps=4, batch_size=4, grad_accum=2, eval_every=0, sample_every=0, save_every=2, keep_last=0, lr=1e-2,
    warmup_steps=0, grad_clip=0.1, parallel="fsdp", scheduler={"name": "none"},
)  # fmt: skip
TOLERANCE = {"adamw": 1e-5, "lion": 1e-5}  # the optimizers fsdp shards (engine/project/rules.py)
HALF_BATCH = ["pretrain.batch_size=2"]  # each of 2 ranks: half the global batch of 4 rows


def _rank_main(rank: int, runs: list[tuple[str, list[str], str | bool]], port: int) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    for project, overrides, resume in runs:
        worker.run(project, "pretrain", overrides, device="cpu", resume=resume)
    torch.distributed.destroy_process_group()


def two_ranks(*runs: tuple[str, list[str], str | bool]) -> None:
    mp.start_processes(_rank_main, args=(list(runs), _free_port()), nprocs=2, start_method="spawn")


def run_dir(project):
    [run] = list_runs(load_project(project), "pretrain")
    return run


def losses(run, measure: str = "loss") -> dict[int, float]:
    """{step: training loss (or another measure)} (a resumed step: its latest value)."""
    return {e["step"]: e[measure] for e in read_events(run / METRICS_FILE) if e["type"] == "metrics"}


def resumable_copy(run, name: str = "pretrain-20000101-000000"):
    """The run as it stood at its step-2 checkpoint, in a new run folder beside it."""
    copy = run.with_name(name)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(FINAL, LOCK_FILE))
    return copy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{optimizer: (1-process run, 2-process fsdp run)}; a 2-process adamw run of 2 steps resumed by
    2 processes to 4; the 4-step fsdp adamw run resumed at its step 2 by 1 process."""
    root = tmp_path_factory.mktemp("sharding")
    single = {name: make_project(root / f"single-{name}", optimizer={"name": name}, **FIELDS) for name in TOLERANCE}
    double = {name: make_project(root / f"double-{name}", optimizer={"name": name}, **FIELDS) for name in TOLERANCE}
    halves = make_project(root / "halves", **{**FIELDS, "steps": 2})
    for project in single.values():
        worker.run(project, "pretrain", device="cpu")
    fresh = [(str(p), HALF_BATCH, False) for p in (*double.values(), halves)]
    two_ranks(*fresh, (str(halves), [*HALF_BATCH, "pretrain.steps=4"], True))
    runs = {name: (run_dir(single[name]), run_dir(double[name])) for name in TOLERANCE}
    on_one = resumable_copy(runs["adamw"][1])
    worker.run(double["adamw"], "pretrain", HALF_BATCH, device="cpu", resume=str(on_one))
    return runs, run_dir(halves), on_one


@pytest.mark.parametrize("optimizer", TOLERANCE)
def test_two_fsdp_processes_train_as_one_with_the_global_batch(trained, optimizer):
    one, two = trained[0][optimizer]
    assert sorted(losses(two)) == [1, 2, 3, 4]
    for step, loss in losses(one).items():
        assert losses(two)[step] == pytest.approx(loss, abs=TOLERANCE[optimizer]), step
    norms = losses(one, "grad_norm")
    assert min(norms.values()) > FIELDS["grad_clip"]  # every step clipped: on shards, by the global norm
    assert losses(two, "grad_norm") == pytest.approx(norms, rel=1e-5)
    gathered, reference = load_file(two / FINAL / "model.safetensors"), load_file(one / FINAL / "model.safetensors")
    assert gathered.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(gathered[name], reference[name], rtol=1e-4, atol=TOLERANCE[optimizer])
    assert (two / step_name(2) / OPTIMIZER_DCP).is_dir() and not (one / step_name(2) / OPTIMIZER_DCP).exists()


def test_the_final_folder_loads_as_a_plain_model_holding_the_gathered_weights(trained):
    _, two = trained[0]["adamw"]
    model = load_model(two / FINAL, torch.device("cpu"))
    assert type(model).__name__ == "LLMLabForCausalLM"
    gathered = load_file(two / FINAL / "model.safetensors")
    state = model.state_dict()
    for name, tensor in gathered.items():
        assert torch.equal(state[name], tensor), name
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied again


def test_a_resumed_fsdp_run_repeats_the_uninterrupted_losses(trained):
    runs, resumed, _ = trained
    expected = losses(runs["adamw"][1])
    assert losses(resumed) == expected  # bit for bit: steps 1-2 before the stop, 3-4 after the resume


def _by_name(optimizer_state: dict) -> dict[str, dict]:
    """{parameter name: its state} from a torch optimizer state dict with named groups."""
    names = [name for group in optimizer_state["param_groups"] for name in group["param_names"]]
    ids = [i for group in optimizer_state["param_groups"] for i in group["params"]]
    return {name: optimizer_state["state"][i] for name, i in zip(names, ids)}


def test_the_sharded_optimizer_state_reads_into_one_unsharded_process(trained):
    """What 2 ranks wrote with DCP is, in 1 process, the state an unsharded run had at that step;
    and a 1-process resume of the 2-process run trains on to its end."""
    runs, _, on_one = trained
    single, double = runs["adamw"]
    checkpoint = double / step_name(2)
    model = load_model(checkpoint, torch.device("cpu"))
    stage = load_project(checkpoint.parent).pretrain
    optimizer = build_optimizer(model, stage.optimizer, stage.lr)
    load_optimizer(model, optimizer, checkpoint / OPTIMIZER_DCP)
    loaded = _by_name(optimizer.state_dict())
    reference = _by_name(load_trainer_state(single / step_name(2))["optimizer"])
    assert loaded.keys() == reference.keys()
    for name, state in reference.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(loaded[name][key], state[key], rtol=1e-4, atol=1e-6, msg=f"{name}.{key}")
    assert sorted(losses(on_one)) == [1, 2, 3, 4] and (on_one / FINAL / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        (["pretrain.optimizer.name='adafactor'"], "pretrain.optimizer.name", "fsdp cannot shard adafactor"),
        (["pretrain.optimizer.name='sophia'"], "pretrain.optimizer.name", "fsdp cannot shard sophia"),
        (["pretrain.optimizer.name='muon'"], "pretrain.optimizer.name", "fsdp cannot shard muon"),
        (["pretrain.parallel='zero3'"], "pretrain.parallel", "must be one of ddp, fsdp, got 'zero3'"),
        (["sft.parallel='fsdp'", "sft.lora.enabled=true"], "sft.lora.enabled", "fsdp does not train LoRA"),
        (["dpo.parallel='fsdp'"], "dpo.parallel", "fsdp trains pretrain and sft only, not dpo"),
    ],
)
def test_what_fsdp_cannot_train_is_refused_by_name(tmp_path, overrides, field, says):
    project = make_project(tmp_path / "p", parallel="fsdp")
    with pytest.raises(LLMLabError) as refused:
        load_project(project, overrides)
    lines = [str(problem) for problem in refused.value.problems]
    assert any(line.startswith(f"{field}: ") and says in line for line in lines), lines
