"""Sampling settings and streamed completions on top of transformers' `generate()`.

`sampling_config` turns the knobs a person types (temperature, top-k, top-p, repetition
penalty) into a GenerationConfig, checking them; `stream_completion` loads a model directory
and its tokenizer and streams a completion to stdout (`llmlab generate`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, TextStreamer

from engine.project.problems import LLMLabError


def sampling_config(
    base: GenerationConfig,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_ids: list[int] | None = None,
) -> GenerationConfig:
    """`base` (the model's, for its special tokens) with these settings; temperature 0 means greedy."""
    problems = [
        message
        for failed, message in (
            (max_new_tokens < 1, "max_new_tokens: must be at least 1"),
            (temperature < 0, "temperature: must be >= 0 (0 is greedy)"),
            (top_k < 0, "top_k: must be >= 0 (0 keeps every token)"),
            (not 0 < top_p <= 1, "top_p: must be in (0, 1]"),
            (repetition_penalty <= 0, "repetition_penalty: must be > 0"),
        )
        if failed
    ]
    if problems:
        raise LLMLabError(problems)
    config = GenerationConfig.from_dict(base.to_dict())
    sampling = temperature > 0
    config.update(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        temperature=temperature if sampling else None,
        top_k=top_k if sampling and top_k else None,
        top_p=top_p if sampling and top_p < 1 else None,
        repetition_penalty=repetition_penalty,
    )
    if eos_token_ids:
        config.eos_token_id = eos_token_ids
    if config.pad_token_id is None:
        config.pad_token_id = eos_token_ids[0] if eos_token_ids else config.eos_token_id
    return config


def prompt_ids(tokenizer, prompt: str, chat: bool) -> list[int]:
    """The prompt's token ids; with `chat`, one user turn in the tokenizer's template plus the reply prompt."""
    if not chat:
        return tokenizer(prompt)["input_ids"]
    if not tokenizer.chat_template:
        raise LLMLabError("chat: the tokenizer has no chat template (fine-tune with SFT first, or drop --chat)")
    messages = [{"role": "user", "content": prompt}]
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def stream_completion(
    model_dir: str | Path,
    prompt: str,
    chat: bool = False,
    seed: int | None = None,
    device: str | None = None,
    max_new_tokens: int = 128,
    **sampling,
) -> list[int]:
    """Load `model_dir` and its tokenizer, stream the completion of `prompt` to stdout; return its ids."""
    from engine.device import pick_device
    from engine.factory import load_model

    target = pick_device(device)
    model = load_model(model_dir, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise LLMLabError(f"model_dir: {model_dir} has no loadable tokenizer files: {error}") from error
    eos = None
    if chat:
        from engine.chat_template import end_of_turn_ids

        eos = list(dict.fromkeys([*end_of_turn_ids(tokenizer), tokenizer.eos_token_id]))
    config = sampling_config(model.generation_config, max_new_tokens, eos_token_ids=eos, **sampling)
    ids = torch.tensor([prompt_ids(tokenizer, prompt, chat)], dtype=torch.long, device=target)
    if ids.shape[1] == 0:
        raise LLMLabError("prompt: it encodes to no tokens; give some text")
    if seed is not None:
        torch.manual_seed(seed)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=streamer)
    return out[0, ids.shape[1] :].tolist()
