"""Sampling settings and streamed completions on top of transformers' `generate()`.

`sampling_config` turns the knobs a person types (temperature, top-k, top-p, repetition
penalty) into a GenerationConfig, checking them; `stream_completion` loads a model directory
and its tokenizer and streams a completion to stdout (`llmlab generate`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, TextStreamer

from engine.project.problems import LLMLabError, Problem
from engine.project.sampling import flag_name, plain_name, sampling_problems


def sampling_config(
    base: GenerationConfig,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    eos_token_ids: list[int] | None = None,
    name: Callable[[str], str] = plain_name,
) -> GenerationConfig:
    """`base` (the model's, for its special tokens) with these settings; temperature 0 means greedy.

    A setting that is not a finite number in its range is refused, one line each naming it as
    `name(key)` says (`flag_name` for the CLI's options)."""
    settings = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
    )
    problems = sampling_problems(settings, name)
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


def context_length(model) -> int | None:
    """The model's context (config.max_position_embeddings), or None when it names none."""
    value = getattr(model.config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def fit_context(
    prompt_tokens: int, max_new_tokens: int, context: int | None, name: Callable[[str], str] = plain_name
) -> tuple[int, str | None]:
    """(the new tokens the context leaves room for, a line saying so when that clamped
    max_new_tokens, else None). A prompt that fills the context is refused."""
    if context is None:
        return max_new_tokens, None
    if prompt_tokens >= context:
        raise LLMLabError(
            Problem(
                name("prompt"),
                f"{prompt_tokens} tokens, but the model's context is {context} tokens "
                "(max_position_embeddings) and a reply needs room; shorten it",
            )
        )
    room = context - prompt_tokens
    if max_new_tokens <= room:
        return max_new_tokens, None
    note = (
        f"{name('max_new_tokens')}: {max_new_tokens} would pass the model's {context}-token context "
        f"after this {prompt_tokens}-token prompt; generating at most {room}"
    )
    return room, note


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
    note: Callable[[str], None] | None = None,
    **sampling,
) -> list[int]:
    """Load `model_dir` and its tokenizer, stream the completion of `prompt` to stdout; return its ids.

    Settings are checked before the model loads; `max_new_tokens` is clamped to what the model's
    context leaves after the prompt, and `note` (default: a line on stderr) says so."""
    from engine.device import pick_device
    from engine.factory import load_model

    problems = sampling_problems(dict(max_new_tokens=max_new_tokens, **sampling), flag_name)
    if problems:
        raise LLMLabError(problems)
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
    ids = torch.tensor([prompt_ids(tokenizer, prompt, chat)], dtype=torch.long, device=target)
    if ids.shape[1] == 0:
        raise LLMLabError("--prompt: it encodes to no tokens; give some text")
    max_new_tokens, clamped = fit_context(ids.shape[1], max_new_tokens, context_length(model), flag_name)
    if clamped:
        (note or (lambda line: print(line, file=sys.stderr)))(clamped)
    config = sampling_config(model.generation_config, max_new_tokens, eos_token_ids=eos, name=flag_name, **sampling)
    if seed is not None:
        torch.manual_seed(seed)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=streamer)
    return out[0, ids.shape[1] :].tolist()
