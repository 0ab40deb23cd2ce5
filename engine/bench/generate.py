"""`llmlab bench generate`: KV-cache decoding tokens/s, ours against transformers' Llama, same weights.

Our model (the train bench's shape) is saved, exported to a stock Llama directory through
`engine.export`, and both directories are loaded back; each side then decodes greedily with
`generate()` from the same random prompts at batch 1 and batch 8 (a GRPO group), alternating
over several rounds. Both must produce the same tokens; tokens/s counts new tokens.
"""

from __future__ import annotations

import dataclasses

from engine.bench import common
from engine.bench.train import SIDES, SIZES, llmlab_config

BATCH_SIZES = (1, 8)
NEW_TOKENS = 256
PROMPT_TOKENS = 16


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="decoding tokens/s with the KV cache: ours vs transformers' Llama")
    parser.add_argument("--size", choices=tuple(SIZES), default="small", help="model shape (default small)")
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help=f"tokens to generate (default {NEW_TOKENS})")
    common.add_arguments(parser, rounds=3)
    parser.set_defaults(func=main)


def load_pair(size: str, new_tokens: int, device, tmp) -> dict:
    """Ours and its Llama export, loaded from directories the way a user would, in eval mode."""
    import torch
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    from engine.export import export_llama
    from engine.factory import load_model
    from engine.model import LLMLabForCausalLM

    transformers_logging.disable_progress_bar()  # no loading bars between the tables
    shape = dataclasses.replace(SIZES[size], seq_len=PROMPT_TOKENS + new_tokens)
    torch.manual_seed(0)
    LLMLabForCausalLM(llmlab_config(shape)).save_pretrained(tmp / "ours")
    export_llama(tmp / "ours", tmp / "llama")
    reference = LlamaForCausalLM.from_pretrained(tmp / "llama", attn_implementation="sdpa", trust_remote_code=False)
    return {"ours": load_model(tmp / "ours", device), "reference": reference.to(device).eval()}


def decoder(model, prompt, new_tokens: int, outputs: dict, side: str):
    """A call that decodes `new_tokens` greedily from `prompt` and keeps the tokens in `outputs[side]`."""
    import torch

    def run():
        with torch.inference_mode():
            outputs[side] = model.generate(
                prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0
            )

    return run


def run_bench(size: str, rounds: int, device, new_tokens: int = NEW_TOKENS) -> dict:
    """Tokens/s of each side at each batch size (median round), their ratios, and whether the tokens agree."""
    import tempfile
    from pathlib import Path

    import torch

    result = {
        "bench": "generate",
        "size": size,
        "new_tokens": new_tokens,
        "prompt_tokens": PROMPT_TOKENS,
        "rounds": rounds,
        "machine": common.machine(device),
        "batches": {},
    }
    with tempfile.TemporaryDirectory(prefix="llmlab-bench-") as tmp:
        models = load_pair(size, new_tokens, device, Path(tmp))
    generator = torch.Generator().manual_seed(0)
    for batch in BATCH_SIZES:
        prompt = torch.randint(1, models["ours"].config.vocab_size, (batch, PROMPT_TOKENS), generator=generator)
        outputs = {}
        seconds = common.interleaved(
            {side: decoder(models[side], prompt.to(device), new_tokens, outputs, side) for side in SIDES},
            rounds,
            device,
        )
        entry = {
            side: {"tokens_per_s": batch * new_tokens / common.median(seconds[side]), "round_seconds": seconds[side]}
            for side in SIDES
        }
        entry["ratio"] = entry["ours"]["tokens_per_s"] / entry["reference"]["tokens_per_s"]
        entry["same_tokens"] = bool(torch.equal(outputs["ours"], outputs["reference"]))
        result["batches"][str(batch)] = entry
    return result


def main(args) -> int:
    device = common.setup(args)
    result = run_bench(args.size, args.rounds, device, args.new_tokens)
    rows = [
        [
            f"batch {batch}",
            f"{e['ours']['tokens_per_s']:,.0f}",
            f"{e['reference']['tokens_per_s']:,.0f}",
            f"{e['ratio']:.2f}",
            "yes" if e["same_tokens"] else "NO",
        ]
        for batch, e in result["batches"].items()
    ]
    text = (
        f"generate, size {args.size}: {args.new_tokens} new tokens after {PROMPT_TOKENS}, greedy, KV cache; "
        f"median of {args.rounds} rounds\n"
        + common.table(["", "ours tok/s", "reference tok/s", "ratio", "same tokens"], rows)
    )
    ratios = ", ".join(f"batch {b} {e['ratio']:.2f}" for b, e in result["batches"].items())
    return common.report(args, result, text, f"ratio ours/reference: {ratios}")
