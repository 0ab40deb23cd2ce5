"""Rollouts for PPO and GRPO: prompts rendered and batched, responses sampled, tokens scored.

The inference side "knows nothing" of rewards or losses: it turns prompt token lists into a
`Rollout` (prompt left-padded, response right-padded, one batched `generate` call with the KV
cache), and turns a rollout back into per-token log-probabilities under any model.

Both run the model without dropout (eval mode, restored after; checkpointed blocks keep their
own train flag, so that activation checkpointing still applies): sampling, the rollout's old
log-probs, values and reference log-probs, and the loss's new log-probs alike, as TRL's PPO
does. The clipped ratio compares the same function before and after an update; with dropout in
either pass the first epoch's ratio would differ from 1 by noise alone (LoRA's dropout 0.05
gave a mean |ratio - 1| of 0.04), and the KL to the reference would be noisy too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.modeling_layers import GradientCheckpointingLayer

from engine.logprobs import head_input, token_logprobs, token_logprobs_and_entropy


@dataclass
class Rollout:
    input_ids: torch.Tensor  # (B, P + R): prompt left-padded, then the response
    attention_mask: torch.Tensor  # (B, P + R)
    prompt_length: int  # P
    response_mask: torch.Tensor  # (B, R) float: 1 up to and including the first end-of-turn token
    truncated: torch.Tensor  # (B,) bool: the response never ended its turn within max_new_tokens
    responses: list[str]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_length :]

    @property
    def response_lengths(self) -> torch.Tensor:
        return self.response_mask.sum(1)

    def select(self, index: torch.Tensor) -> Rollout:
        """The rows `index` of this rollout (a mini-batch)."""
        return Rollout(
            self.input_ids[index],
            self.attention_mask[index],
            self.prompt_length,
            self.response_mask[index],
            self.truncated[index],
            [self.responses[i] for i in index.tolist()],
        )


@contextmanager
def no_dropout(model: torch.nn.Module) -> Iterator[None]:
    """`model` in eval mode (no dropout of any kind; gradients still flow), every module's mode
    restored after. Decoder blocks that checkpoint their activations keep their own train flag
    (theirs only: their parts are in eval), as it is what turns checkpointing on."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    for module in modes:
        if isinstance(module, GradientCheckpointingLayer) and module.gradient_checkpointing:
            module.training = True
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def left_pad(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every sequence right-aligned."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def response_mask(response_ids: torch.Tensor, stop_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """1.0 on tokens up to and including the first stop token; and whether no stop token came."""
    is_stop = torch.isin(response_ids, torch.tensor(stop_ids, device=response_ids.device))
    stops_before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()
    return (stops_before == 0).float(), ~is_stop.any(1)


@torch.no_grad()
def sample_rollouts(
    model,
    tokenizer,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    stop_ids: list[int],
    repeats: int = 1,
) -> Rollout:
    """Sample `repeats` responses per prompt in one batched generate call (rows grouped by prompt)."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {}
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids,
        pad_token_id=pad_id,
        num_return_sequences=repeats,
        use_cache=True,
        **sampling,
    )
    with no_dropout(model):
        output = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
    response = output[:, prompt_ids.shape[1] :]
    mask, truncated = response_mask(response, stop_ids)
    attention = torch.cat([prompt_mask.repeat_interleave(repeats, dim=0), torch.ones_like(response)], dim=1)
    texts = [tokenizer.decode(row[keep.bool()], skip_special_tokens=True) for row, keep in zip(response, mask)]
    return Rollout(output, attention, prompt_ids.shape[1], mask, truncated, texts)


def score_tokens(
    model,
    rollout: Rollout,
    temperature: float = 1.0,
    with_entropy: bool = False,
    with_hidden: bool = False,
    mode: str = "plain",
):
    """Per-token log-probabilities of the response (B, R) under `model`, at the sampling temperature,
    without dropout (see the module docstring; with gradients unless the caller turns them off).
    `mode` is the stage's fused_loss (engine/logprobs.py).

    Optionally also the per-token entropy and the last hidden states at the positions that
    predict each response token (for a value head).
    """
    position_ids = (rollout.attention_mask.cumsum(-1) - 1).clamp(min=0)
    with no_dropout(model):
        states = head_input(
            model,
            mode,
            input_ids=rollout.input_ids,
            attention_mask=rollout.attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
    states = states.positions(rollout.prompt_length - 1, -1)
    labels = rollout.response_ids.masked_fill(rollout.response_mask == 0, -100)
    temperature = max(temperature, 1e-5)
    if with_entropy:
        logps, entropy = token_logprobs_and_entropy(states, labels, mode, temperature)
    else:
        logps, entropy = token_logprobs(states, labels, mode, temperature), None
    return logps, entropy, states.hidden if with_hidden else None
