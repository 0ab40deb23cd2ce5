"""Optimizers and schedules (engine/optim.py) on a tiny language model, on the CPU."""

import copy
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.factory import build_model
from engine.optim import (
    BUILDERS,
    OPTIMIZER_DEFAULTS,
    SCHEDULES,
    Composite,
    before_step,
    build_optimizer,
    build_scheduler,
    gauss_newton_bartlett,
    lr_at,
)
from engine.project import SCHEDULER_DEFAULTS, ModelConfig, OptimizerConfig, Project, SchedulerConfig
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer

VOCAB = 16


class Block(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.up_proj = nn.Linear(d, 2 * d)
        self.down_proj = nn.Linear(2 * d, d)

    def forward(self, h):
        return h + self.down_proj(F.gelu(self.up_proj(self.norm(h))))


class TinyLM(nn.Module):
    """Embedding, two residual MLP blocks, a norm and a head: the parameter kinds of a real model."""

    def __init__(self, d: int = 32, tie: bool = False):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, d)
        self.layers = nn.ModuleList([Block(d), Block(d)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        if tie:
            self.lm_head.weight = self.embed_tokens.weight

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids, attention_mask=None):
        h = self.embed_tokens(input_ids)
        for layer in self.layers:
            h = layer(h)
        return SimpleNamespace(logits=self.lm_head(self.norm(h)))


def make_batch(seed: int = 0) -> dict:
    """Sequences following x[t+1] = (3·x[t] + 1) mod VOCAB from random starts."""
    g = torch.Generator().manual_seed(seed)
    tokens = [torch.randint(0, VOCAB, (16,), generator=g)]
    for _ in range(7):
        tokens.append((3 * tokens[-1] + 1) % VOCAB)
    input_ids = torch.stack(tokens, dim=1)  # (16, 8)
    return {"input_ids": input_ids, "labels": input_ids.clone()}


def lm_loss(model, batch):
    logits = model(input_ids=batch["input_ids"]).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), batch["labels"][:, 1:].reshape(-1))


def next_token_loss(model, batch):
    """The pretraining batch form: `targets` are the inputs shifted by one."""
    logits = model(input_ids=batch["input_ids"]).logits
    return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())


def train(model, optimizer, scheduler, batch, steps, loss_fn=lm_loss):
    losses = []
    for _ in range(steps):
        loss = loss_fn(model, batch)
        loss.backward()
        before_step(optimizer, model, batch)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


LR = {"adamw": 1e-2, "adafactor": 1e-2, "lion": 2e-3, "sophia": 1e-2, "muon": 2e-2}


def optimizer_cfg(name: str, **changes) -> OptimizerConfig:
    cfg = OptimizerConfig.default(name)
    cfg.options.update(changes)
    if name == "muon":
        cfg.options["adamw_lr"] = 1e-2
    return cfg


def test_registries_match_the_schema():
    assert set(BUILDERS) == set(OPTIMIZER_DEFAULTS)
    assert set(SCHEDULES) == set(SCHEDULER_DEFAULTS)


@pytest.mark.parametrize("scheduler", list(SCHEDULER_DEFAULTS))
@pytest.mark.parametrize("name", list(OPTIMIZER_DEFAULTS))
def test_every_optimizer_with_every_schedule_lowers_the_loss(name, scheduler):
    torch.manual_seed(0)
    model = TinyLM()
    optimizer = build_optimizer(model, optimizer_cfg(name), LR[name])
    schedule = SchedulerConfig(scheduler, dict(SCHEDULER_DEFAULTS[scheduler]))
    if "min_lr" in schedule.options:
        schedule.options["min_lr"] = LR[name] / 10
    losses = train(model, optimizer, build_scheduler(optimizer, schedule, 3, 40), make_batch(), 40)
    assert losses[-1] < 0.3 * losses[0], losses


# ---------------------------------------------------------------------------------------------
# schedules


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        # lr 1e-3, warmup 10, total 110, min_lr 1e-4; worked by hand at steps 0, 9, 10, 35, 110, 500
        ("none", {}, [1e-3 / 11, 1e-3 * 10 / 11, 1e-3, 1e-3, 1e-3, 1e-3]),
        (
            "cosine",
            {"min_lr": 1e-4},  # step 35: progress 1/4, 1e-4 + 0.5·(1 + cos(π/4))·9e-4
            [1e-3 / 11, 1e-3 * 10 / 11, 1e-3, 1e-4 + 0.5 * (1 + math.sqrt(0.5)) * 9e-4, 1e-4, 1e-4],
        ),
        ("linear", {"min_lr": 1e-4}, [1e-3 / 11, 1e-3 * 10 / 11, 1e-3, 7.75e-4, 1e-4, 1e-4]),
        (
            "polynomial",
            {"power": 2.0, "min_lr": 1e-4},  # 1e-4 + 9e-4·(3/4)²
            [1e-3 / 11, 1e-3 * 10 / 11, 1e-3, 6.0625e-4, 1e-4, 1e-4],
        ),
    ],
)
def test_lr_at_equals_the_formulas(name, options, expected):
    got = [lr_at(step, 1e-3, name, options, 10, 110) for step in (0, 9, 10, 35, 110, 500)]
    assert got == pytest.approx(expected, rel=1e-12)


def test_cosine_midpoint_and_no_warmup():
    assert lr_at(50, 2.0, "cosine", {"min_lr": 0.0}, 0, 100) == pytest.approx(1.0)
    assert lr_at(0, 2.0, "cosine", {"min_lr": 0.0}, 0, 100) == 2.0


def test_scheduler_sets_the_optimizer_lr_of_each_step():
    model = TinyLM()
    optimizer = build_optimizer(model, OptimizerConfig.default("adamw"), 1e-3)
    scheduler = build_scheduler(optimizer, SchedulerConfig("cosine", {"min_lr": 1e-4}), 5, 30)
    for step in range(35):
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(lr_at(step, 1e-3, "cosine", {"min_lr": 1e-4}, 5, 30))
        optimizer.step()
        scheduler.step()


def test_schedule_scales_both_muon_parts_from_their_own_lr():
    model = TinyLM()
    cfg = optimizer_cfg("muon")
    optimizer = build_optimizer(model, cfg, 2e-2)
    scheduler = build_scheduler(optimizer, SchedulerConfig("linear", {"min_lr": 2e-3}), 4, 20)
    for _ in range(12):
        optimizer.step()
        scheduler.step()
    factor = lr_at(12, 2e-2, "linear", {"min_lr": 2e-3}, 4, 20) / 2e-2
    muon_lrs = [g["lr"] for g in optimizer.parts["muon"].param_groups]
    adamw_lrs = [g["lr"] for g in optimizer.parts["adamw"].param_groups]
    assert muon_lrs == pytest.approx([2e-2 * factor])
    assert adamw_lrs == pytest.approx([1e-2 * factor] * 2)


# ---------------------------------------------------------------------------------------------
# parameter groups


def group_names(optimizer) -> list[set[str]]:
    return [set(group["param_names"]) for group in optimizer.param_groups]


LINEAR_WEIGHTS = {f"layers.{i}.{proj}.weight" for i in (0, 1) for proj in ("up_proj", "down_proj")}


@pytest.mark.parametrize("name", ["adamw", "adafactor", "lion", "sophia"])
def test_weight_decay_only_on_linear_matrices(name):
    model = TinyLM()
    optimizer = build_optimizer(model, optimizer_cfg(name, weight_decay=0.1), 1e-3)
    decay, no_decay = optimizer.param_groups
    assert set(decay["param_names"]) == LINEAR_WEIGHTS | {"lm_head.weight"}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert set(no_decay["param_names"]) == {n for n, _ in model.named_parameters()} - set(decay["param_names"])
    assert "embed_tokens.weight" in no_decay["param_names"]


def test_a_tied_head_is_an_embedding_no_decay():
    optimizer = build_optimizer(TinyLM(tie=True), OptimizerConfig.default("adamw"), 1e-3)
    assert group_names(optimizer)[0] == LINEAR_WEIGHTS


def test_muon_gets_only_the_hidden_matrices():
    model = TinyLM()
    optimizer = build_optimizer(model, optimizer_cfg("muon", weight_decay=0.05), 2e-2)
    assert isinstance(optimizer, Composite)
    assert group_names(optimizer.parts["muon"]) == [LINEAR_WEIGHTS]
    assert optimizer.parts["muon"].param_groups[0]["lr"] == 2e-2
    assert optimizer.parts["muon"].param_groups[0]["weight_decay"] == 0.05
    adamw = optimizer.parts["adamw"]
    assert isinstance(adamw, torch.optim.AdamW)
    rest = set().union(*group_names(adamw))
    assert rest == {n for n, _ in model.named_parameters()} - LINEAR_WEIGHTS
    assert {"embed_tokens.weight", "lm_head.weight", "norm.weight", "layers.0.up_proj.bias"} <= rest
    assert {g["lr"] for g in adamw.param_groups} == {1e-2}
    assert optimizer.param_groups[0]["lr"] == 2e-2  # the stage lr first: build_scheduler reads it


def test_frozen_parameters_are_left_out():
    model = TinyLM()
    model.embed_tokens.weight.requires_grad_(False)
    optimizer = build_optimizer(model, OptimizerConfig.default("adamw"), 1e-3)
    assert "embed_tokens.weight" not in set().union(*group_names(optimizer))


# ---------------------------------------------------------------------------------------------
# Sophia


def test_sophia_refreshes_its_hessian_on_its_period_only():
    torch.manual_seed(0)
    model = TinyLM()
    optimizer = build_optimizer(model, optimizer_cfg("sophia", hessian_update_period=3), 1e-2)
    scheduler = build_scheduler(optimizer, SchedulerConfig.default("none"), 0, 10)
    weight = model.layers[0].up_proj.weight
    refreshed = []
    for _ in range(8):
        before = optimizer.state[weight].get("hessian_moment", torch.zeros_like(weight)).clone()
        train(model, optimizer, scheduler, make_batch(), 1)
        refreshed.append(not torch.equal(before, optimizer.state[weight]["hessian_moment"]))
    assert refreshed == [True, False, False, True, False, False, True, False]


def test_sophia_refuses_a_due_step_without_an_estimate():
    model = TinyLM()
    optimizer = build_optimizer(model, optimizer_cfg("sophia"), 1e-2)
    lm_loss(model, make_batch()).backward()
    with pytest.raises(RuntimeError, match="before_step"):
        optimizer.step()


class Bias(nn.Module):
    """Logits = a learned vector at every position: the CE Hessian in it is diag(p) - p pᵀ."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0, -1.0, 0.5]))

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, 4))


def test_gauss_newton_bartlett_is_unbiased_for_the_hessian_diagonal():
    torch.manual_seed(0)
    model = Bias()
    batch = {"input_ids": torch.zeros(1, 5, dtype=torch.long)}  # N = 4 predicted positions
    samples = torch.stack([gauss_newton_bartlett(model, batch, [model.bias])[0] for _ in range(1000)])
    p = model.bias.softmax(-1).detach()
    # E[N·ĝ²] = p(1 - p); standard errors ≤ 0.01, and a missing factor N would give a quarter
    assert samples.mean(0).tolist() == pytest.approx((p * (1 - p)).tolist(), abs=0.04)


@pytest.mark.parametrize(
    "batch",
    [
        {"labels": torch.tensor([[0, -100, -100, 3]])},  # HF labels: position 2 predicts labels[3]
        {"targets": torch.tensor([[-100, -100, -100, 3]])},  # pretraining targets, aligned
        {"attention_mask": torch.tensor([[1, 1, 0, 0]])},  # position 0 predicts the attended token 1
    ],
    ids=["labels", "targets", "attention_mask"],
)
def test_gauss_newton_bartlett_counts_only_trained_positions(batch):
    model = Bias()
    batch = {"input_ids": torch.zeros(1, 4, dtype=torch.long), **batch}
    estimate = gauss_newton_bartlett(model, batch, [model.bias])[0]
    p = model.bias.softmax(-1).detach()
    # one trained position with sampled label y: N·ĝ² = (p - onehot(y))², one entry (1 - p_y)²
    off = (estimate - p.square()).abs() > 1e-6
    assert off.sum() == 1
    assert estimate[off].item() == pytest.approx((1 - p[off]).square().item())


# ---------------------------------------------------------------------------------------------
# the lab's own model


def llmlab_model(**fields):
    shape = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    torch.manual_seed(0)
    return build_model(Project(model=ModelConfig(**{**shape, **fields})), byte_tokenizer())


PROJECTIONS = {
    f"model.layers.{i}.{proj}.weight"
    for i in (0, 1)
    for proj in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
}


@pytest.mark.parametrize("tie", [True, False])
def test_muon_on_the_llmlab_model_gets_the_block_projections(tie):
    model = llmlab_model(tie_embeddings=tie, bias=True)
    optimizer = build_optimizer(model, optimizer_cfg("muon", adamw_weight_decay=0.1), 1e-3)
    assert group_names(optimizer.parts["muon"]) == [PROJECTIONS]
    by_decay = {g["weight_decay"]: set(g["param_names"]) for g in optimizer.parts["adamw"].param_groups}
    no_decay = by_decay.pop(0.0)
    assert by_decay == ({} if tie else {0.1: {"lm_head.weight"}})
    assert {"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.mlp.up_proj.bias"} <= no_decay


def test_adamw_on_the_llmlab_model_decays_the_projections_only():
    decay, no_decay = group_names(build_optimizer(llmlab_model(), OptimizerConfig.default("adamw"), 1e-3))
    assert decay == PROJECTIONS
    assert no_decay == {"model.embed_tokens.weight", "model.norm.weight"} | {
        f"model.layers.{i}.{norm}.weight" for i in (0, 1) for norm in ("input_layernorm", "post_attention_layernorm")
    }


def test_sophia_trains_the_llmlab_model_on_pretraining_batches():
    model = llmlab_model()
    optimizer = build_optimizer(model, optimizer_cfg("sophia", hessian_update_period=2), 1e-2)
    scheduler = build_scheduler(optimizer, SchedulerConfig.default("none"), 0, 20)
    ids = torch.arange(17).repeat(4, 1) + torch.arange(4)[:, None] * 5  # (4, 17) counting sequences
    batch = {"input_ids": ids[:, :-1], "targets": ids[:, 1:]}
    losses = train(model, optimizer, scheduler, batch, 20, loss_fn=next_token_loss)
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------------------------------------
# settings and resume


def test_unknown_settings_are_refused():
    with pytest.raises(LLMLabError) as caught:
        build_optimizer(TinyLM(), OptimizerConfig("adamw", {"momentum": 0.9, "eps": 1e-8}), 1e-3)
    assert caught.value.lines == ["optimizer.momentum: unknown setting for adamw (known: betas, eps, weight_decay)"]
    with pytest.raises(LLMLabError) as caught:
        build_optimizer(TinyLM(), OptimizerConfig("sgd", {}), 1e-3)
    assert caught.value.lines == ["optimizer.name: must be one of adamw, adafactor, lion, sophia, muon, got 'sgd'"]
    optimizer = build_optimizer(TinyLM(), OptimizerConfig.default("adamw"), 1e-3)
    with pytest.raises(LLMLabError) as caught:
        build_scheduler(optimizer, SchedulerConfig("none", {"min_lr": 0.0}), 0, 10)
    assert caught.value.lines == ["scheduler.min_lr: unknown setting for none (known: none)"]


def test_settings_reach_the_optimizer():
    optimizer = build_optimizer(TinyLM(), optimizer_cfg("adamw", betas=[0.8, 0.9], eps=1e-6), 1e-3)
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.9) and optimizer.param_groups[0]["eps"] == 1e-6
    optimizer = build_optimizer(TinyLM(), optimizer_cfg("muon", ns_steps=3, nesterov=False), 1e-3)
    muon = optimizer.parts["muon"].param_groups[0]
    assert (muon["ns_steps"], muon["nesterov"], muon["adjust_lr_fn"]) == (3, False, "match_rms_adamw")


@pytest.mark.parametrize("name", list(OPTIMIZER_DEFAULTS))
def test_state_dict_round_trip_gives_identical_next_steps(name):
    torch.manual_seed(0)
    cfg = optimizer_cfg(name, **({"hessian_update_period": 2} if name == "sophia" else {}))
    schedule = SchedulerConfig("cosine", {"min_lr": 1e-4})

    def fresh():
        model = TinyLM()
        optimizer = build_optimizer(model, cfg, LR[name])
        return model, optimizer, build_scheduler(optimizer, schedule, 2, 10)

    model, optimizer, scheduler = fresh()
    train(model, optimizer, scheduler, make_batch(0), 3)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), scheduler.state_dict()))
    torch.manual_seed(1)
    unbroken = train(model, optimizer, scheduler, make_batch(1), 4)

    model2, optimizer2, scheduler2 = fresh()
    model2.load_state_dict(saved[0])
    optimizer2.load_state_dict(saved[1])
    scheduler2.load_state_dict(saved[2])
    torch.manual_seed(1)
    resumed = train(model2, optimizer2, scheduler2, make_batch(1), 4)
    assert resumed == unbroken
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_adafactors_defaults_take_steps_of_the_stage_lr_not_of_the_weights_size():
    # torch's Adafactor scales a step by max(eps2, RMS(param)); at its eps2 1e-3 a weight at
    # RMS 0.02 moved 50x less than the stage lr (issue #13): the default eps2 1 floors it at 1
    weight = nn.Parameter(torch.randn(64, 64) * 0.02)
    model = nn.Sequential(nn.Linear(64, 64, bias=False))
    model[0].weight = weight
    cfg = OptimizerConfig(name="adafactor", options=dict(OPTIMIZER_DEFAULTS["adafactor"]))
    optimizer = build_optimizer(model, cfg, 1e-3)
    before = weight.detach().clone()
    model(torch.randn(8, 64)).pow(2).sum().backward()
    optimizer.step()
    moved = (weight.detach() - before).pow(2).mean().sqrt().item()
    assert 0.5e-3 < moved <= 1.01e-3
