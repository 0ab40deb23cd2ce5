"""`llmlab bench data`: packed tokens/s of the data pipeline beside a training step's consumption.

The shipped tiny Shakespeare (engine/bench/data) is written as a jsonl and a parquet corpus (one
paragraph a row) and read the way a run reads it (engine.data: load_source, token_mixture,
PackedBatches), map-style (tokenized once by datasets.map, then packed) and streaming (read,
tokenized and packed batch by batch: the work that sat on the training loop's hot path). The
tokenizer is a 1024-token BPE trained on the text, the batches the demo project's (16 × 128).
Beside them: the training step of the demo model (its [model] table, AdamW, the same batches)
in tokens/s, and that step fed by the streaming loader synchronously and through
engine.prefetch.Prefetched, whose difference is the time the loop no longer waits on data.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from engine.bench import common
from engine.bench.shakespeare import DATA

SEQ_LEN, BATCH_SIZE, VOCAB = 128, 16, 1024  # the demo project's batches and tokenizer size
BATCHES = 40
STEPS = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="packed tokens/s (jsonl, parquet; map-style, streaming) vs a step")
    parser.add_argument("--batches", type=int, default=BATCHES, help=f"batches packed per source (default {BATCHES})")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps timed per loader (default {STEPS})")
    common.add_machine_arguments(parser)
    parser.set_defaults(func=main)


def write_corpora(folder: Path) -> dict[str, Path]:
    """The Shakespeare paragraphs as corpus.jsonl and corpus.parquet."""
    import datasets

    paragraphs = [p for p in DATA.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    table = datasets.Dataset.from_dict({"text": paragraphs})
    paths = {"jsonl": folder / "corpus.jsonl", "parquet": folder / "corpus.parquet"}
    table.to_json(paths["jsonl"])
    table.to_parquet(paths["parquet"])
    return paths


def packer(path: Path, streaming: bool, tokenizer):
    """A run's training batches over one local corpus."""
    from engine.data import load_source, token_mixture
    from engine.packing import PackedBatches
    from engine.project import DatasetConfig

    source = load_source(DatasetConfig(path=str(path), streaming=streaming))
    return PackedBatches(token_mixture([source], [1.0], tokenizer, seed=0), tokenizer, SEQ_LEN, BATCH_SIZE)


def packed_rate(path: Path, streaming: bool, tokenizer, batches: int) -> dict:
    """Tokens/s of opening + packing `batches` batches, and of the packing alone."""
    start = time.perf_counter()
    loader = packer(path, streaming, tokenizer)
    opened = time.perf_counter()
    tokens = sum(batch.num_tokens for batch in itertools.islice(loader, batches))
    done = time.perf_counter()
    return {"open_s": opened - start, "tokens_per_s": tokens / (done - opened)}


class DemoStep:
    """The demo model's training step (AdamW, clipping) on the batches of a loader."""

    def __init__(self, tokenizer, device):
        import torch

        from engine.factory import model_config
        from engine.model import LLMLabForCausalLM
        from engine.optim import build_optimizer
        from engine.project import OptimizerConfig, load_project
        from engine.project.files import TEMPLATES_DIR

        demo = load_project(TEMPLATES_DIR / "demo.toml")
        torch.manual_seed(0)
        self.model = LLMLabForCausalLM(model_config(demo.model, len(tokenizer))).to(device).train()
        self.optimizer = build_optimizer(self.model, OptimizerConfig.default("adamw"), 1e-3)
        self.device = device

    def __call__(self, batch) -> None:
        import torch

        from engine.objectives.pretrain import next_token_loss

        input_ids, targets = batch.input_ids.to(self.device), batch.targets.to(self.device)
        next_token_loss(self.model, input_ids, targets).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def fed_rate(step: DemoStep, loader, steps: int) -> float:
    """Tokens/s of `steps` training steps, each drawing its batch from `loader` (after one warm-up)."""
    step(next(loader))
    start = time.perf_counter()
    for batch in itertools.islice(loader, steps):
        step(batch)
    common.synchronize(step.device)
    return steps * SEQ_LEN * BATCH_SIZE / (time.perf_counter() - start)


def run_bench(batches: int, steps: int, device) -> dict:
    from engine.prefetch import Prefetched
    from engine.tokenizer import train_bpe

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_corpora(folder)
        paragraphs = (p for p in DATA.read_text(encoding="utf-8").split("\n\n"))
        tokenizer = train_bpe(paragraphs, VOCAB, folder / "tokenizer")
        sources = {
            f"{kind} {'streaming' if streaming else 'map-style'}": packed_rate(path, streaming, tokenizer, batches)
            for kind, path in paths.items()
            for streaming in (False, True)
        }
        step = DemoStep(tokenizer, device)
        fixed = next(packer(paths["jsonl"], False, tokenizer))
        consumed = fed_rate(step, itertools.repeat(fixed), steps)  # the step alone: its batch is ready
        synchronous = fed_rate(step, packer(paths["jsonl"], True, tokenizer), steps)
        prefetched = Prefetched(packer(paths["jsonl"], True, tokenizer))
        ahead = fed_rate(step, prefetched, steps)
        prefetched.close()
    return {
        "machine": common.machine(device),
        "batch": [BATCH_SIZE, SEQ_LEN],
        "sources": sources,
        "step_tokens_per_s": consumed,
        "fed_synchronously_tokens_per_s": synchronous,
        "fed_prefetched_tokens_per_s": ahead,
    }


def main(args) -> int:
    device = common.setup(args)
    result = run_bench(args.batches, args.steps, device)
    step = result["step_tokens_per_s"]
    rows = [
        [name, f"{r['open_s']:.2f}", f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / step:.1f}×"]
        for name, r in result["sources"].items()
    ]
    rows += [
        ["training step alone (demo model)", "", f"{step:,.0f}", "1.0×"],
        ["step fed by streaming jsonl, synchronous", "", f"{result['fed_synchronously_tokens_per_s']:,.0f}", ""],
        ["step fed by streaming jsonl, prefetched", "", f"{result['fed_prefetched_tokens_per_s']:,.0f}", ""],
    ]
    slowest = min(r["tokens_per_s"] for r in result["sources"].values())
    verdict = "keeps ahead of" if slowest > step else "falls behind"
    last = (
        f"the slowest source packs {slowest:,.0f} tokens/s: it {verdict} the step's {step:,.0f} "
        f"(batches of {BATCH_SIZE} × {SEQ_LEN})"
    )
    text = common.table(["loader", "open s", "tokens/s", "× step"], rows)
    return common.report(args, result, text, last)
