"""`llmlab info PROJECT`: parameters, FLOPs per token, memory to train, and the project's runs."""

from __future__ import annotations

from engine.commands import add_overrides
from engine.project import STAGES, Project, load_project, sizing
from engine.project.problems import LLMLabError
from engine.project.runs import list_runs, run_stage, run_state

MEMORY_ROWS = ("weights", "gradients", "optimizer", "activations", "transient", "total")


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="model size, FLOPs per token, training memory and runs")
    parser.add_argument("project", help="a project directory or its project.toml")
    parser.add_argument("--stage", default="pretrain", choices=STAGES, help="the stage to size memory for")
    parser.add_argument(
        "--world-size", type=int, default=1, metavar="N", help="devices the run trains on (memory is per device)"
    )
    parser.add_argument(
        "--parallel", choices=sizing.PARALLELS, help="ddp: a full copy per device; fsdp: sharded (default: the stage's)"
    )
    add_overrides(parser, "model.n_layers=8")
    parser.set_defaults(func=run)


def run(args) -> int:
    project = load_project(args.project, args.sets)
    if args.world_size < 1:
        raise LLMLabError(f"--world-size: must be at least 1, got {args.world_size}")
    print("\n".join(describe(project, args.stage, args.world_size, args.parallel)))
    return 0


def vocab_size(project: Project) -> int:
    """The tokenizer's size from the file, or by loading it (hub id or path), padded to 64."""
    size = sizing.tokenizer_vocab_size(project.tokenizer)
    if size is None:
        from engine.tokenizer import load_tokenizer  # transformers: only for a hub id or path

        tok = project.tokenizer
        size = len(load_tokenizer(tok.source, project.root, trust_remote_code=tok.trust_remote_code))
    return sizing.padded_vocab_size(size)


def describe(project: Project, stage: str = "pretrain", world_size: int = 1, parallel: str | None = None) -> list[str]:
    m, cfg, vocab = project.model, project.stage(stage), vocab_size(project)
    params = sizing.parameter_count(m, vocab)
    embedding = vocab * m.d_model * (1 if m.tie_embeddings else 2)
    lines = [
        f"project      {project.name}  ({project.root})",
        f"model        {m.positional_encoding}, {m.normalization}, {m.attention} ({m.n_heads} heads, "
        f"{m.n_kv_heads} kv), {m.activation}; {m.n_layers} layers, d_model {m.d_model}, d_ff {m.d_ff}",
        f"vocabulary   {vocab} rows ({project.tokenizer.source})",
        f"parameters   {_count(params)} ({_count(params - embedding)} without embeddings)",
        f"FLOPs/token  {_count(sizing.flops_per_token(m, vocab, cfg.seq_len))} to train at seq_len {cfg.seq_len}",
        f"memory to train {stage} (batch {cfg.batch_size} x {cfg.seq_len} tokens, {cfg.optimizer.name}), per device:",
        f"  {_memory_options(cfg, world_size, parallel)}",
        f"  {'':<12}{'bf16':>10}{'fp32':>10}",
    ]
    table = sizing.training_memory(project, vocab, stage, world_size, parallel)
    lines += [
        f"  {row:<12}{sizing.format_bytes(table['bf16'][row]):>10}{sizing.format_bytes(table['fp32'][row]):>10}"
        for row in MEMORY_ROWS
    ]
    return lines + _runs(project)


def _memory_options(cfg, world_size: int, parallel: str | None) -> str:
    """The settings the memory table depends on beside the batch, in words."""
    parallel = parallel or getattr(cfg, "parallel", "ddp")
    checkpointing = "activation checkpointing" if cfg.activation_checkpointing else "no activation checkpointing"
    loss = "full logits" if cfg.fused_loss == "plain" else "chunked loss"
    devices = f"{parallel} on {world_size} device{'s' if world_size > 1 else ''}"
    return f"{checkpointing}, {loss}, {devices}"


def _runs(project: Project) -> list[str]:
    runs = list_runs(project)
    if not runs:
        return ["runs         none yet"]
    lines = ["runs"]
    for run in runs:
        state = run_state(run)
        step = f"step {state['step']}" if state["step"] is not None else "no steps yet"
        if state["total_steps"]:
            step += f"/{state['total_steps']}"
        loss = f"  loss {state['loss']:.4f}" if isinstance(state["loss"], (int, float)) else ""
        where = ""
        if state["state"] == "running" and state["pid"]:
            where = f"  (pid {state['pid']})"
        elif state["state"] in ("stopped", "died", "diverged") and state["checkpoint"]:
            where = f"  (resume from {state['checkpoint'].name})"
        lines.append(f"  {run.name:<32}{run_stage(run):<10}{state['state']:<10}{step}{loss}{where}")
    return lines


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))
