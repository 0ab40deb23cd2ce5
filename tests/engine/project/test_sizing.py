"""Parameter counts, FLOPs and training memory worked out by hand, and checked against the model."""

from __future__ import annotations

import itertools

import pytest

from engine.project import ModelConfig, Project, project_from_dict
from engine.project.sizing import (
    BYTE_VOCAB,
    activation_elements_per_token,
    fitting_batch,
    flops_per_token,
    padded_vocab_size,
    parameter_count,
    parameter_shapes,
    tokenizer_vocab_size,
    training_memory,
    with_stage,
)

TINY = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=64)


def test_parameter_count_by_hand():
    # per layer: q 32x32 + k 32x16 + v 32x16 + o 32x32 = 3072; swiglu 3 x 32x48 = 4608; 2 rmsnorms 64
    assert parameter_count(ModelConfig(**TINY), 64) == 2 * (3072 + 4608 + 64) + 64 * 32 + 32
    # + biases (q 32, k 16, v 16, o 32; gate 48, up 48, down 32), layernorm shifts, untied head
    untied = ModelConfig(**TINY, normalization="layernorm", bias=True, tie_embeddings=False)
    assert parameter_count(untied, 64) == 2 * (3072 + 96 + 4608 + 128 + 128) + 2 * 64 * 32 + 64
    plain = ModelConfig(**TINY, activation="gelu")  # up + down only
    assert parameter_count(plain, 64) == 2 * (3072 + 2 * 32 * 48 + 64) + 64 * 32 + 32


def test_positions_have_no_parameters():
    counts = {
        pe: parameter_count(ModelConfig(**TINY, positional_encoding=pe), 64)
        for pe in ("sinusoidal", "rope", "alibi", "yarn")
    }
    assert len(set(counts.values())) == 1


def test_flops_per_token_by_hand():
    # 6 x (linear weights 2 x (3072 + 4608) + the tied head 64 x 32) + 12 x layers x d x seq_len
    assert flops_per_token(ModelConfig(**TINY), 64, 16) == 6 * (15360 + 2048) + 12 * 2 * 32 * 16


def test_vocab_sizes():
    assert [padded_vocab_size(n) for n in (1, 64, 65, 258, 4096, 4097)] == [64, 64, 128, 320, 4096, 4160]
    assert tokenizer_vocab_size(Project().tokenizer) == 4096
    assert tokenizer_vocab_size(project_from_dict({"tokenizer": {"source": "bytes"}}).tokenizer) == BYTE_VOCAB
    assert tokenizer_vocab_size(project_from_dict({"tokenizer": {"source": "gpt2"}}).tokenizer) is None


def test_byte_vocab_matches_the_byte_tokenizer():
    tokenizer = pytest.importorskip("engine.tokenizer")
    assert len(tokenizer.byte_tokenizer()) == BYTE_VOCAB


def tiny_project(optimizer: str, **stage) -> Project:
    stage = {"batch_size": 2, "seq_len": 16, "optimizer": {"name": optimizer}, "fused_loss": "plain", **stage}
    return project_from_dict({"model": TINY, "pretrain": stage})


def test_training_memory_by_hand():
    table = training_memory(tiny_project("adamw"), 64)
    n, matmul = 17568, 17408
    # per token, activation dtype: layers 2 x (4 x 32 + 2 x 16 + 3 x 48) + the final norm's output 32;
    # fp32: 5 norms x (residual input + rmsnorm's normalized copy) x 32 + the loss's 64 log-probs
    assert activation_elements_per_token(ModelConfig(**TINY), 64) == (640, 384)
    assert table["fp32"] == {
        "weights": 4 * n,
        "gradients": 4 * n,
        "optimizer": 8 * n,
        "activations": 32 * (640 + 384) * 4,
        "transient": 0,
        "total": 16 * n + 32 * 4096,
    }
    assert table["bf16"]["weights"] == 4 * n + 2 * matmul  # fp32 master + autocast's bf16 copies
    assert table["bf16"]["activations"] == 32 * (640 * 2 + 384 * 4)


def test_checkpointing_the_chunked_loss_and_fsdp_by_hand():
    m = ModelConfig(**TINY)
    # the final norm's output; fp32: every block's input (2 x 32) and the final norm's two; the
    # chunked loss keeps no log-probs
    assert activation_elements_per_token(m, 64, checkpointing=True, fused_loss="chunked") == (32, 64 + 64)
    chunked = training_memory(tiny_project("adamw", fused_loss="chunked"), 64)["fp32"]
    assert chunked["activations"] == 32 * (640 + 320) * 4
    # 32 tokens in ceil(64 / 32) = 2 chunks of 16 rows: logits, log-softmax and gradient in fp32
    assert chunked["transient"] == 3 * 16 * 64 * 4
    both = training_memory(tiny_project("adamw", fused_loss="chunked", activation_checkpointing=True), 64)
    # + the block backward recomputes: 4 x 32 + 2 x 16 + 3 x 48 in the activation dtype, 2 x 2 x 32 fp32
    assert both["fp32"]["transient"] == 3 * 16 * 64 * 4 + 32 * (304 + 128) * 4
    assert both["bf16"]["transient"] == 3 * 16 * 64 * 4 + 32 * (304 * 2 + 128 * 4)
    n, block = 17568, 3072 + 4608 + 64
    ddp = training_memory(tiny_project("adamw"), 64, world_size=4, parallel="ddp")["fp32"]
    fsdp = training_memory(tiny_project("adamw"), 64, world_size=4, parallel="fsdp")["fp32"]
    assert ddp["weights"] == 4 * n and ddp["optimizer"] == 8 * n
    assert fsdp["weights"] == 4 * n // 4 + 4 * block  # a quarter, plus the block gathered whole
    assert fsdp["gradients"] == 4 * n // 4 + 4 * block
    assert fsdp["optimizer"] == 8 * n // 4
    assert fsdp["activations"] == ddp["activations"]


def test_a_batch_that_fits_is_suggested():
    project = tiny_project("adamw", batch_size=8, grad_accum=1, seq_len=64)
    need = training_memory(project, 64)["fp32"]["total"]
    assert fitting_batch(project, 64, "pretrain", need, "fp32") is None
    advice = fitting_batch(project, 64, "pretrain", need - 1, "fp32")
    assert advice.startswith("pretrain.batch_size: ") and "grad_accum = 2" in advice
    smaller = tiny_project("adamw", batch_size=4, grad_accum=2, seq_len=64)
    assert training_memory(smaller, 64)["fp32"]["total"] < need
    # the weights and optimizer alone: even one sequence per micro-batch is too much
    fixed = sum(training_memory(project, 64)["fp32"][row] for row in ("weights", "gradients", "optimizer"))
    assert "do not fit" in fitting_batch(project, 64, "pretrain", fixed, "fp32")
    # 32 layers: a checkpointed micro-batch of 1 fits where a plain one does not
    deep = project_from_dict(
        {"model": {**TINY, "n_layers": 32}, "pretrain": {"batch_size": 8, "seq_len": 64, "fused_loss": "plain"}}
    )
    checkpointed = with_stage(deep, "pretrain", batch_size=1, grad_accum=8, activation_checkpointing=True)
    room = training_memory(checkpointed, 64)["fp32"]["total"]
    plain_one = with_stage(deep, "pretrain", batch_size=1, grad_accum=8)
    assert training_memory(plain_one, 64)["fp32"]["total"] > room
    advice = fitting_batch(deep, 64, "pretrain", room, "fp32")
    assert advice.endswith(
        "try pretrain.batch_size = 1, pretrain.grad_accum = 8, pretrain.activation_checkpointing = true"
    )


def test_optimizer_state_per_optimizer():
    n = 17568
    state = {
        name: training_memory(tiny_project(name), 64)["fp32"]["optimizer"] // 4
        for name in ("adamw", "lion", "sophia", "adafactor", "muon")
    }
    assert state["lion"] == n and state["sophia"] == 2 * n
    hidden = 2 * (3072 + 4608)  # Muon's matrices: one momentum each; the rest AdamW's two moments
    assert state["muon"] == hidden + 2 * (n - hidden)
    # Adafactor: rows + columns for matrices, the whole tensor for vectors
    matrices = 64 + 32 + 2 * ((32 + 32) + 2 * (16 + 32) + (32 + 32) + 2 * (48 + 32) + (32 + 48))
    assert state["adafactor"] == matrices + 5 * 32


def test_shapes_equal_the_real_model():
    """Every name and shape `parameter_shapes` predicts is the real model's, over the options."""
    pytest.importorskip("torch")
    factory = pytest.importorskip("engine.factory")
    from engine.model import LLMLabForCausalLM

    for norm, attention, activation, bias, tie in itertools.product(
        ("layernorm", "rmsnorm"), ("mha", "mqa", "gqa"), ("gelu", "swiglu"), (False, True), (False, True)
    ):
        kv_heads = {"mha": 4, "mqa": 1, "gqa": 2}[attention]
        m = ModelConfig(
            **{**TINY, "n_kv_heads": kv_heads},
            normalization=norm,
            attention=attention,
            activation=activation,
            bias=bias,
            tie_embeddings=tie,
        )
        model = LLMLabForCausalLM(factory.model_config(m, 300))
        real = {name: tuple(p.shape) for name, p in model.named_parameters()}
        assert real == dict(parameter_shapes(m, padded_vocab_size(300))), (norm, attention, activation, bias, tie)


@pytest.mark.parametrize("activation,normalization", [("swiglu", "rmsnorm"), ("gelu", "layernorm")])
def test_activation_estimate_is_near_what_autograd_saves(activation, normalization):
    """fp32 on the CPU: the bytes autograd keeps for backward (parameters aside) within 10%."""
    torch = pytest.importorskip("torch")
    factory = pytest.importorskip("engine.factory")
    from engine.model import LLMLabForCausalLM

    m = ModelConfig(
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=192,
        max_seq_len=128,
        activation=activation,
        normalization=normalization,
    )
    model = LLMLabForCausalLM(factory.model_config(m, 500))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 500, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    act, loss = activation_elements_per_token(m, padded_vocab_size(500))
    estimate = 2 * 64 * (act + loss) * 4
    assert 0.9 < estimate / sum(saved.values()) < 1.1
