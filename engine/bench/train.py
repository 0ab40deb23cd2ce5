"""`llmlab bench train`: training-step throughput and peak memory, ours against transformers' Llama.

Both sides get the identical shape (rope, rmsnorm, swiglu, gqa; same sizes and tying) and the
same initial weights, batch (packed, no padding), loss (`next_token_loss`, the pretraining
objective's), gradient clipping and AdamW settings. Ours steps with `engine.optim.build_optimizer`
(what `llmlab run` uses); the reference with `torch.optim.AdamW(fused=True)`, transformers'
Trainer default (`adamw_torch_fused`). On CUDA both run under bf16 autocast and MFU is reported
(engine.device.peak_flops: the table, or LLMLAB_PEAK_FLOPS). Peak memory is measured for each side
in a fresh process: CUDA max allocated, or the growth of the peak RSS on the CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from engine.bench import common

SIDES = ("ours", "reference")
LR = 1e-3
GRAD_CLIP = 1.0
ROUNDS = 10  # one step per round: ours and the reference alternate step by step


@dataclass(frozen=True)
class Shape:
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    seq_len: int
    batch_size: int


SIZES = {
    "tiny": Shape(64, 2, 4, 2, 128, 256, 32, 2),  # for tests
    "small": Shape(256, 4, 8, 2, 768, 4096, 256, 8),  # the demo project's model, for CPUs
    "124m": Shape(768, 12, 12, 4, 2048, 50304, 1024, 16),  # GPT-2 small's size, for a GPU
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="training tokens/s and peak memory: ours vs transformers' Llama")
    parser.add_argument("--size", choices=tuple(SIZES), default="small", help="model and batch (default small)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the two subprocesses that measure peak memory"
    )
    common.add_arguments(parser, rounds=ROUNDS)
    parser.set_defaults(func=main)


def project_model(shape: Shape):
    """The [model] table of `shape`: Llama's parts (rope, rmsnorm, swiglu, gqa)."""
    from engine.project import ModelConfig

    return ModelConfig(
        positional_encoding="rope",
        normalization="rmsnorm",
        attention="gqa",
        activation="swiglu",
        d_model=shape.d_model,
        n_layers=shape.n_layers,
        n_heads=shape.n_heads,
        n_kv_heads=shape.n_kv_heads,
        d_ff=shape.d_ff,
        max_seq_len=shape.seq_len,
    )


def llmlab_config(shape: Shape):
    """Our model's config for `shape`, through the same mapping as a project's [model] table."""
    from engine.factory import model_config

    return model_config(project_model(shape), shape.vocab_size)


def build_model(side: str, config):
    """Our model, or LlamaForCausalLM (SDPA attention) with the same shape, in training mode."""
    from transformers import LlamaForCausalLM

    from engine.export import llama_config
    from engine.model import LLMLabForCausalLM

    if side == "ours":
        return LLMLabForCausalLM(config).train()
    return LlamaForCausalLM._from_config(llama_config(config), attn_implementation="sdpa").train()


def build_optimizer(side: str, model):
    import torch

    from engine.optim import build_optimizer as ours
    from engine.project import OptimizerConfig

    cfg = OptimizerConfig.default("adamw")
    if side == "ours":
        return ours(model, cfg, LR)
    o = cfg.options
    return torch.optim.AdamW(
        model.parameters(), lr=LR, betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"], fused=True
    )


def random_batch(shape: Shape, device) -> dict:
    """A packed batch of random tokens; targets are the inputs shifted by one."""
    import torch

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, shape.vocab_size, (shape.batch_size, shape.seq_len + 1), generator=generator)
    return {"input_ids": tokens[:, :-1].to(device), "targets": tokens[:, 1:].to(device)}


class Trainee:
    """One side: a model, its optimizer and one batch; `step()` is one training step, no host sync."""

    def __init__(self, side: str, config, shape: Shape, device, compile: bool = False):
        from engine.device import compile_model, pick_precision

        self.model = build_model(side, config).to(device)
        if compile:
            compile_model(self.model)
        self.optimizer = build_optimizer(side, self.model)
        self.precision, _ = pick_precision(device)
        self.batch = random_batch(shape, device)

    def step(self) -> None:
        import torch

        from engine.objectives.pretrain import next_token_loss

        with self.precision.autocast():
            loss = next_token_loss(self.model, self.batch["input_ids"], self.batch["targets"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def peak_memory(side: str, size: str, device: str, compile: bool, steps: int = 2) -> dict:
    """Run in a fresh process: the peak bytes of training `side` (weights, gradients, optimizer, activations)."""
    import torch
    import transformers.models.llama.modeling_llama  # noqa: F401 - imported before the baseline

    import engine.objectives.pretrain
    import engine.optim  # noqa: F401

    device = torch.device(device)
    shape = SIZES[size]
    config = llmlab_config(shape)
    before = common.rss_bytes()
    common.reset_peak_rss()
    trainee = Trainee(side, config, shape, device, compile)
    for _ in range(steps):
        trainee.step()
    if device.type == "cuda":
        return {"peak_bytes": torch.cuda.max_memory_allocated(device)}
    return {"peak_bytes": common.rss_bytes("VmHWM") - before}


def run_bench(size: str, rounds: int, device, compile: bool = False, memory: bool = True) -> dict:
    """Tokens/s of each side (median round), their ratio, peak memory and (CUDA) MFU."""
    import torch

    from engine.device import peak_flops
    from engine.project.sizing import flops_per_token

    shape = SIZES[size]
    config = llmlab_config(shape)
    torch.manual_seed(0)
    sides = {side: Trainee(side, config, shape, device, compile) for side in SIDES}
    sides["reference"].model.load_state_dict(sides["ours"].model.state_dict())  # same weights, same names
    seconds = common.interleaved({side: trainee.step for side, trainee in sides.items()}, rounds, device, warmup=2)
    tokens = shape.batch_size * shape.seq_len
    result = {
        "bench": "train",
        "size": size,
        "shape": asdict(shape),
        "compile": compile,
        "rounds": rounds,
        "machine": common.machine(device),
        "precision": sides["ours"].precision.name,
    }
    peak = peak_flops(device)
    flops = flops_per_token(project_model(shape), shape.vocab_size, shape.seq_len)
    for side in SIDES:
        tps = tokens / common.median(seconds[side])
        result[side] = {
            "tokens_per_s": tps,
            "round_seconds": seconds[side],
            "mfu": tps * flops / peak if peak else None,
        }
        if memory:
            result[side]["peak_memory_bytes"] = common.run_child(
                "engine.bench.train:peak_memory",
                side=side,
                size=size,
                device=str(device),
                compile=compile,
            )["peak_bytes"]
    result["ratio"] = result["ours"]["tokens_per_s"] / result["reference"]["tokens_per_s"]
    if memory:
        result["memory_ratio"] = result["ours"]["peak_memory_bytes"] / result["reference"]["peak_memory_bytes"]
    return result


def main(args) -> int:
    device = common.setup(args)
    result = run_bench(args.size, args.rounds, device, args.compile, args.memory)
    rows = []
    for side in SIDES:
        r = result[side]
        row = [side, f"{r['tokens_per_s']:,.0f}"]
        row.append(common.mib(r["peak_memory_bytes"]) if args.memory else "-")
        row.append(f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "-")
        rows.append(row)
    s = result["shape"]
    text = (
        f"train, size {args.size}: d_model {s['d_model']}, {s['n_layers']} layers, {s['n_heads']} heads "
        f"({s['n_kv_heads']} kv), d_ff {s['d_ff']}, vocab {s['vocab_size']}, batch {s['batch_size']} x "
        f"{s['seq_len']}, {result['precision']}{', compiled' if args.compile else ''}; "
        f"median of {args.rounds} steps each, alternating\n"
        + common.table(["", "tokens/s", "peak memory", "MFU"], rows)
    )
    memory = f", peak memory ours/reference {result['memory_ratio']:.2f}" if args.memory else ""
    return common.report(args, result, text, f"ratio ours/reference: tokens/s {result['ratio']:.2f}{memory}")
