"""`llmlab generate MODEL_DIR --prompt TEXT`: stream a completion from a saved model to stdout."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="stream a completion from a model directory")
    parser.add_argument("model_dir", help="a model directory (config.json + weights + tokenizer files)")
    parser.add_argument("--prompt", required=True, help="the text to continue (the user turn with --chat)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="at most this many new tokens")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 picks the likeliest token (greedy)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="sample within this probability mass")
    parser.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats")
    parser.add_argument("--seed", type=int, default=None, help="seed the sampler for a repeatable output")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from transformers.utils import logging

    from engine.generation import stream_completion

    logging.disable_progress_bar()  # stdout is the completion; keep stderr quiet too

    stream_completion(
        args.model_dir,
        args.prompt,
        chat=args.chat,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        device=args.device,
    )
    return 0
