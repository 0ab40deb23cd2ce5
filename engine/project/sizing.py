"""How big a model is and what training it costs, worked out from project.toml alone (no torch).

`parameter_shapes` lists every weight the model builds, by its Hugging Face name, so the
count can be checked against the real model; FLOPs follow the Chinchilla / nanoGPT estimate;
memory adds weights, gradients, optimizer state and activations for bf16 autocast and fp32,
per device under DDP or FSDP, and `fitting_batch` says what micro-batch would fit a device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from engine.project.schema import ModelConfig, Project, TokenizerConfig

BYTE_VOCAB = 256 + 2  # 256 bytes + engine.tokenizer's two special tokens
VOCAB_MULTIPLE = 64

Shapes = list[tuple[str, tuple[int, ...]]]


def padded_vocab_size(n_tokens: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """The embedding rows for a tokenizer of `n_tokens`: rounded up to a multiple (for speed)."""
    return math.ceil(n_tokens / multiple) * multiple


def tokenizer_vocab_size(tokenizer: TokenizerConfig) -> int | None:
    """The tokenizer's size when the project file says it (bytes, bpe); None for a hub id or path."""
    return {"bytes": BYTE_VOCAB, "bpe": tokenizer.vocab_size}.get(tokenizer.source)


def parameter_shapes(m: ModelConfig, vocab_size: int) -> Shapes:
    """Every trainable tensor of the model: (name, shape). Positions have no parameters."""
    d, hd = m.d_model, m.d_model // m.n_heads
    q_out, kv_out = m.n_heads * hd, m.n_kv_heads * hd

    def linear(name: str, n_in: int, n_out: int) -> Shapes:
        return [(f"{name}.weight", (n_out, n_in))] + ([(f"{name}.bias", (n_out,))] if m.bias else [])

    def norm(name: str) -> Shapes:  # layernorm always has its shift; rmsnorm only a scale
        return [(f"{name}.weight", (d,))] + ([(f"{name}.bias", (d,))] if m.normalization == "layernorm" else [])

    shapes: Shapes = [("model.embed_tokens.weight", (vocab_size, d))]
    ffn = ["gate_proj", "up_proj"] if m.activation == "swiglu" else ["up_proj"]
    for i in range(m.n_layers):
        layer = f"model.layers.{i}"
        shapes += norm(f"{layer}.input_layernorm")
        shapes += linear(f"{layer}.self_attn.q_proj", d, q_out)
        shapes += linear(f"{layer}.self_attn.k_proj", d, kv_out)
        shapes += linear(f"{layer}.self_attn.v_proj", d, kv_out)
        shapes += linear(f"{layer}.self_attn.o_proj", q_out, d)
        shapes += norm(f"{layer}.post_attention_layernorm")
        for proj in ffn:
            shapes += linear(f"{layer}.mlp.{proj}", d, m.d_ff)
        shapes += linear(f"{layer}.mlp.down_proj", m.d_ff, d)
    shapes += norm("model.norm")
    if not m.tie_embeddings:
        shapes.append(("lm_head.weight", (vocab_size, d)))
    return shapes


def _numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def parameter_count(m: ModelConfig, vocab_size: int) -> int:
    return sum(_numel(shape) for _, shape in parameter_shapes(m, vocab_size))


def _matmul_parameters(m: ModelConfig, vocab_size: int) -> int:
    """Weights that multiply activations: every linear layer and the output head (not the lookup)."""
    linear = sum(_numel(s) for name, s in parameter_shapes(m, vocab_size) if len(s) == 2 and "embed" not in name)
    return linear + (vocab_size * m.d_model if m.tie_embeddings else 0)


def flops_per_token(m: ModelConfig, vocab_size: int, seq_len: int) -> int:
    """Training FLOPs per token: 6 per matmul weight (forward 2, backward 4) plus attention's
    6 * 2 * n_layers * d_attn * seq_len (scores and weighted sum; Kaplan et al. 2020, Table 1,
    and nanoGPT's estimate_mfu, which count the causal half as well)."""
    d_attn = m.n_heads * (m.d_model // m.n_heads)
    return 6 * _matmul_parameters(m, vocab_size) + 12 * m.n_layers * d_attn * seq_len


# optimizer state, in fp32 numbers per tensor of the given shape
def _adafactor_state(shape: tuple[int, ...]) -> int:
    return shape[0] + shape[1] if len(shape) == 2 else _numel(shape)  # factored second moment


def _muon_state(name: str, shape: tuple[int, ...]) -> int:
    hidden_matrix = len(shape) == 2 and ".layers." in name
    return _numel(shape) * (1 if hidden_matrix else 2)  # momentum; AdamW's two moments elsewhere


OPTIMIZER_STATE: dict[str, Callable[[str, tuple[int, ...]], int]] = {
    "adamw": lambda name, shape: 2 * _numel(shape),
    "adafactor": lambda name, shape: _adafactor_state(shape),
    "lion": lambda name, shape: _numel(shape),
    "sophia": lambda name, shape: 2 * _numel(shape),  # momentum + Hessian diagonal
    "muon": _muon_state,
}
PRECISIONS = {"bf16": 2, "fp32": 4}  # bytes of an activation
PARALLELS = ("ddp", "fsdp")  # a full copy per device | weights, gradients and state sharded


def activation_elements_per_token(
    m: ModelConfig, vocab_size: int, checkpointing: bool = False, fused_loss: str = "plain"
) -> tuple[int, int]:
    """(elements kept for backward per token in the activation dtype, those kept in fp32).

    Activation dtype, per layer: the two norm outputs the projections take (2d), q, k, v and the
    attention output (2d + 2 kv), the FFN's hidden activations (gated: gate, up and their product,
    silu(gate) being recomputed in backward; plain: pre and post act); then the final norm's
    output (d). In fp32 whatever the autocast dtype: the residual stream each norm reads (d per
    norm), rmsnorm's fp32 normalized copy (d more), and, with the plain loss, the log-softmax of
    the logits (vocab; the chunked loss keeps none). Attention scores are not stored (fused SDPA);
    alibi's additive bias can send SDPA to its math kernel (the CPU does), which also keeps
    n_heads x seq_len weights per token per layer: not counted here.

    With activation checkpointing a block keeps only its input (the fp32 residual stream, d);
    backward recomputes one block at a time (`transient_bytes`).
    """
    layer, layer_fp32 = _layer_elements(m)
    per_norm = 2 if m.normalization == "rmsnorm" else 1
    fp32 = per_norm * m.d_model + (vocab_size if fused_loss == "plain" else 0)
    if checkpointing:
        return m.d_model, m.n_layers * m.d_model + fp32
    return m.n_layers * layer + m.d_model, m.n_layers * layer_fp32 + fp32


def _layer_elements(m: ModelConfig) -> tuple[int, int]:
    """One block's kept elements per token: (in the activation dtype, in fp32)."""
    kv = m.n_kv_heads * (m.d_model // m.n_heads)
    ffn = (3 if m.activation == "swiglu" else 2) * m.d_ff
    per_norm = 2 if m.normalization == "rmsnorm" else 1
    return 4 * m.d_model + 2 * kv + ffn, 2 * per_norm * m.d_model


def transient_bytes(
    m: ModelConfig, vocab_size: int, tokens: int, size: int, checkpointing: bool, fused_loss: str
) -> int:
    """What exists only while backward runs: the block being recomputed (checkpointing: one
    block's activations over the micro-batch's `tokens`, `size` bytes each, fp32 parts in fp32),
    plus the chunked loss's working set: one chunk's fp32 logits, log-softmax and gradient, with
    ceil(vocab / d_model) chunks over the tokens (engine/logprobs.py)."""
    layer, layer_fp32 = _layer_elements(m)
    block = tokens * (layer * size + layer_fp32 * 4) if checkpointing else 0
    rows = math.ceil(tokens / math.ceil(vocab_size / m.d_model))
    return block + (3 * rows * vocab_size * 4 if fused_loss != "plain" else 0)


def _largest_block(shapes: Shapes) -> int:
    """Parameters of the largest decoder block: what FSDP gathers whole while it runs."""
    blocks: dict[str, int] = {}
    for name, shape in shapes:
        if ".layers." in name:
            block = name.split(".layers.")[1].split(".")[0]
            blocks[block] = blocks.get(block, 0) + _numel(shape)
    return max(blocks.values(), default=0)


def training_memory(
    project: Project, vocab_size: int, stage: str = "pretrain", world_size: int = 1, parallel: str | None = None
) -> dict[str, dict[str, int]]:
    """Bytes per device to train `stage` at its batch_size x seq_len, per precision: weights,
    gradients, optimizer, activations (kept for backward), transient (alive only in backward),
    total. bf16 is autocast: fp32 weights, gradients and optimizer state, bf16 copies of the
    matmul weights, bf16 activations. Full training (no LoRA, no reference model). The stage's
    activation_checkpointing and fused_loss shape the activations; `parallel` (default: the
    stage's, else "ddp"): "ddp" keeps a full copy per device, "fsdp" divides weights, gradients
    and optimizer state by `world_size` and adds the one block it gathers whole at a time (its
    weights and their gradients)."""
    m, cfg = project.model, project.stage(stage)
    parallel = parallel or getattr(cfg, "parallel", "ddp")
    shards = world_size if parallel == "fsdp" else 1
    shapes = parameter_shapes(m, vocab_size)
    params = sum(_numel(s) for _, s in shapes)
    gathered = _largest_block(shapes) if shards > 1 else 0
    state = sum(OPTIMIZER_STATE[cfg.optimizer.name](name, s) for name, s in shapes)
    checkpointing, fused_loss = cfg.activation_checkpointing, cfg.fused_loss
    act, kept_fp32 = activation_elements_per_token(m, vocab_size, checkpointing, fused_loss)
    tokens = cfg.batch_size * cfg.seq_len
    table = {}
    for precision, size in PRECISIONS.items():
        casts = _matmul_parameters(m, vocab_size) * size if size < 4 else 0
        row = {
            "weights": math.ceil((4 * params + casts) / shards) + gathered * (4 + (size if size < 4 else 0)),
            "gradients": math.ceil(4 * params / shards) + 4 * gathered,
            "optimizer": math.ceil(4 * state / shards),
            "activations": tokens * (act * size + kept_fp32 * 4),
            "transient": transient_bytes(m, vocab_size, tokens, size, checkpointing, fused_loss),
        }
        row["total"] = sum(row.values())
        table[precision] = row
    return table


def fitting_batch(
    project: Project, vocab_size: int, stage: str, free_bytes: int, precision: str, world_size: int = 1
) -> str | None:
    """None when the stage's predicted peak fits in `free_bytes`; else why not and what would fit:
    the largest micro-batch (halving batch_size, raising grad_accum to keep the global batch),
    with activation checkpointing turned on when no micro-batch fits without it."""
    cfg = project.stage(stage)
    need = training_memory(project, vocab_size, stage, world_size)[precision]["total"]
    if need <= free_bytes:
        return None
    said = f"{stage}.batch_size: the run needs about {format_bytes(need)} a device, {format_bytes(free_bytes)} is free"
    global_batch = cfg.batch_size * cfg.grad_accum
    for checkpointing in dict.fromkeys((cfg.activation_checkpointing, True)):
        batch = cfg.batch_size if checkpointing != cfg.activation_checkpointing else cfg.batch_size // 2
        while batch >= 1:
            accum = math.ceil(global_batch / batch)
            trial = with_stage(
                project, stage, batch_size=batch, grad_accum=accum, activation_checkpointing=checkpointing
            )
            if training_memory(trial, vocab_size, stage, world_size)[precision]["total"] <= free_bytes:
                turn_on = checkpointing != cfg.activation_checkpointing
                extra = f", {stage}.activation_checkpointing = true" if turn_on else ""
                return f"{said}; try {stage}.batch_size = {batch}, {stage}.grad_accum = {accum}{extra}"
            batch //= 2
    return f"{said}; even micro-batches of 1 with activation checkpointing do not fit: shrink the model or seq_len"


def with_stage(project: Project, stage: str, **fields) -> Project:
    """A copy of `project` whose `stage` has `fields` changed."""
    return replace(project, **{stage: replace(project.stage(stage), **fields)})


def format_bytes(n: float) -> str:
    """`1.5 GiB`, `12.0 MiB`, `300 B`: a size as people read it."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
