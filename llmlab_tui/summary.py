"""The architecture in numbers and in a picture: sizes from engine.project.sizing, a text diagram of a block.

Plain functions, no Textual. A hub or path tokenizer's size is only known by loading it (in a
worker, with transformers), so the app shows sizes for the tokenizers project.toml sizes itself.
The training memory is the one of the precision a run on this machine will use (bf16 autocast on
a CUDA GPU, fp32 on the CPU: engine/device.py), told without torch from the NVIDIA driver.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from engine.project import ModelConfig, Project, sizing

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the NVIDIA driver runs
NVIDIA_DEVICES = Path("/dev")  # nvidia0, nvidia1, ...: the GPUs a container was given

DEVICES = {"bf16": "GPU", "fp32": "CPU"}  # where a run here trains in each precision
NORMS = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}
ATTENTIONS = {"mha": "MHA", "mqa": "MQA", "gqa": "GQA"}
ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "leaky_relu": "LeakyReLU", "silu": "SiLU", "swiglu": "SwiGLU"}
# Where each positional encoding acts: (on the embeddings, inside attention)
# What a stage's batch rows are, and the sequences each row trains on (0: rollouts, told as they run)
STAGE_ROWS = {"dpo": ("pairs", 2), "ppo": ("prompts", 0), "grpo": ("prompts", 0)}
POSITIONS = {
    "sinusoidal": lambda m: ("+ sinusoidal positions", ""),
    "rope": lambda m: ("", f"RoPE θ={m.rope_theta:g} on q, k"),
    "alibi": lambda m: ("", "ALiBi bias on the scores"),
    "yarn": lambda m: ("", f"YaRN ×{m.yarn_factor:g} of {m.yarn_original_max_seq_len}"),
}


@dataclass(frozen=True)
class ModelSize:
    """What the summary shows; None where the tokenizer's size is unknown to the app."""

    vocab_size: int | None
    parameters: int | None
    flops_per_token: int | None
    memory: int | None  # bytes to train pretrain at its batch and seq_len, in `precision`
    head_dim: int
    precision: str  # "bf16" (a CUDA GPU) or "fp32" (the CPU): what a run on this machine uses


@functools.cache
def this_machine_precision() -> str:
    """bf16 when an NVIDIA GPU is visible here (its driver lists one, CUDA_VISIBLE_DEVICES hides
    none of them), else fp32 — engine/device.py's choice, guessed without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return "fp32"
    found = any(NVIDIA_GPUS.glob("*")) or any(NVIDIA_DEVICES.glob("nvidia[0-9]*"))
    return "bf16" if found else "fp32"


def model_size(project: Project, precision: str | None = None, stage: str = "pretrain") -> ModelSize:
    """Sizes of a valid project (engine.project.sizing), at the `stage`'s batch and seq_len;
    the memory in `precision` (default: this machine's)."""
    m, seq_len = project.model, project.stage(stage).seq_len
    precision = precision or this_machine_precision()
    tokens = sizing.tokenizer_vocab_size(project.tokenizer)
    if tokens is None:
        return ModelSize(None, None, None, None, m.head_dim, precision)
    vocab = sizing.padded_vocab_size(tokens)
    memory = sizing.training_memory(project, vocab, stage)[precision]["total"]
    flops = sizing.flops_per_token(m, vocab, seq_len)
    return ModelSize(vocab, sizing.parameter_count(m, vocab), flops, memory, m.head_dim, precision)


def count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.2f} GiB"


def size_lines(size: ModelSize) -> list[str]:
    return [
        f"parameters   {count(size.parameters)}",
        f"FLOPs/token  {count(size.flops_per_token)}",
        f"train memory {gib(size.memory)} {size.precision} {DEVICES[size.precision]}",
        f"head dim     {size.head_dim}",
        f"vocabulary   {size.vocab_size or '? (hub/path: loaded in a run)'}",
    ]


def block_diagram(m: ModelConfig) -> list[str]:
    """One decoder block and what surrounds it, as lines of at most 30 characters."""
    on_embeddings, in_attention = POSITIONS[m.positional_encoding](m)
    norm, kv = NORMS[m.normalization], {"mha": m.n_heads, "mqa": 1}.get(m.attention, m.n_kv_heads)
    attention = f"{ATTENTIONS[m.attention]} {m.n_heads} q / {kv} kv heads"
    ffn = f"{ACTIVATIONS[m.activation]} {m.d_model}→{m.d_ff}→{m.d_model}"
    inner = [f"x + Attn({norm}(x))", f"  {attention}"]
    inner += [f"  {in_attention}"] if in_attention else []
    inner += [f"x + FFN({norm}(x))", f"  {ffn}"]
    width = max(len(line) for line in inner) + 2
    title = f" block × {m.n_layers} "
    return [
        f"embed tokens {on_embeddings}".rstrip(),
        "┌" + title + "─" * (width - len(title)) + "┐",
        *(f"│ {line:<{width - 1}}│" for line in inner),
        "└" + "─" * width + "┘",
        f"{norm} → lm_head{' (tied)' if m.tie_embeddings else ''}",
    ]


def stage_lines(project: Project, stage: str) -> list[str]:
    """What a run of `stage` amounts to: its batch in sequences and tokens, the tokens it trains on,
    its learning-rate schedule, how often it evaluates and saves, and the memory to train it here."""
    cfg, size = project.stage(stage), model_size(project, stage=stage)
    rows = cfg.batch_size * cfg.grad_accum
    unit, per_row = STAGE_ROWS.get(stage, ("sequences", 1))
    tokens = rows * per_row * cfg.seq_len
    minimum = cfg.scheduler.options.get("min_lr")
    schedule = cfg.scheduler.name if minimum is None else f"{cfg.scheduler.name} to {minimum:g}"
    lora = getattr(cfg, "lora", None)
    kept = f"the last {cfg.keep_last} kept" if cfg.keep_last else "all kept"
    saves = f"every {cfg.save_every} steps, {kept}" if cfg.save_every else "final/ only"
    which = "LoRA adapters (estimate: full training)" if lora is not None and lora.enabled else "full training"
    return [
        f"batch        {cfg.batch_size} × {cfg.grad_accum} = {rows} {unit}",
        f"tokens/step  ≤ {count(tokens)} ({cfg.seq_len} a sequence)" if per_row else "tokens/step  as the rollouts run",
        f"tokens, run  ≤ {count(tokens * cfg.steps)} in {cfg.steps} steps" if per_row else f"steps        {cfg.steps}",
        f"lr           {cfg.lr:g} ({cfg.warmup_steps} warmup steps)",
        f"schedule     {schedule}",
        f"evaluations  {cfg.steps // cfg.eval_every if cfg.eval_every else 0} × {cfg.eval_batches} batches",
        f"checkpoints  {saves}",
        f"memory       {gib(size.memory)} {size.precision} {DEVICES[size.precision]}",
        f"             {which}",
    ]
