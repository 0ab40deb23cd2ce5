"""Supervised fine-tuning: next-token loss on the assistant turns of conversations.

Datasets of any SFT format (engine/formats.py) become conversations, drawn by weight
(engine/rows.py), rendered with the chat template (ChatML added if the tokenizer has none) and
labelled by engine/chat_template.py: the loss covers assistant tokens and each turn's
end-of-turn token (or every token when `assistant_only` is false). Conversations longer than
`seq_len` are cut and counted; with `packing`, whole conversations share rows of `seq_len`
tokens (attending to each other, as in simple packing). With [sft.lora] the module is a peft
model and checkpoints hold adapters, plus the rows of any chat tokens this run added.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from engine.chat_template import (
    IGNORE,
    IM_END,
    IM_START,
    Encoded,
    encode_conversation,
    encode_prompt,
    end_of_turn_ids,
    ensure_chat_template,
)
from engine.formats import rows_to_conversations
from engine.logprobs import HeadInput, cross_entropy, head_input
from engine.lora import parameter_counts, trainable_module
from engine.objectives.base import Objective, ObjectiveContext
from engine.project.problems import LLMLabError
from engine.rows import RowStream, load_items

SAMPLE_TOKENS = 64
MAX_DRAWS_PER_ROW = 50  # conversations drawn for one row before giving up on finding trained tokens


def sft_loss(states: HeadInput, labels: torch.Tensor, mode: str, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of each position's prediction against the next label; IGNORE labels are skipped."""
    return cross_entropy(states.positions(None, -1), labels[:, 1:], mode, reduction)


def collate(rows: list[Encoded], pad_id: int, device: torch.device) -> dict:
    """Right-padded ids and labels; no attention mask needed: under a causal mask, padding at the
    end is never attended to by a real token."""
    width = max(len(r.input_ids) for r in rows)
    ids = [r.input_ids + [pad_id] * (width - len(r.input_ids)) for r in rows]
    labels = [r.labels + [IGNORE] * (width - len(r.labels)) for r in rows]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long, device=device),
        "labels": torch.tensor(labels, dtype=torch.long, device=device),
        "tokens": sum(len(r.input_ids) for r in rows),
    }


def pack(examples: list[Encoded], seq_len: int) -> tuple[list[Encoded], list[Encoded]]:
    """Greedily fill rows of at most `seq_len` tokens with whole examples, in order.

    Returns (full rows, the examples left over for the next call)."""
    rows, current = [], Encoded([], [], False)
    for example in examples:
        if len(current.input_ids) + len(example.input_ids) > seq_len:
            rows.append(current)
            current = Encoded([], [], False)
        current = Encoded(current.input_ids + example.input_ids, current.labels + example.labels, False)
    return rows, [current] if current.input_ids else []


class SFTObjective(Objective):
    def __init__(self, ctx: ObjectiveContext):
        self.ctx, self.config = ctx, ctx.config
        tokenizer = ctx.tokenizer
        added = ensure_chat_template(tokenizer, ctx.model)
        if added:
            ctx.log("sft: the tokenizer has no chat template; added ChatML and its tokens <|im_start|>, <|im_end|>")
        self.uses_lora = self.config.lora.enabled
        new_ids = tokenizer.convert_tokens_to_ids([IM_START, IM_END]) if added else []
        self.module = trainable_module(ctx, new_ids)
        self.trainable_params, self.total_params = parameter_counts(self.module)
        ctx.log(f"sft: training {self.trainable_params:,} of {self.total_params:,} parameters")
        sources = load_items(self.config.datasets, ctx.project.root, rows_to_conversations, f"{ctx.stage}.datasets")
        self.stream = RowStream(sources, ctx.seed, ctx.rank, ctx.world_size)
        heldout = self.stream.heldout(self.config.eval_batches * self.config.batch_size)
        self.eval_rows = [r for r in map(self.encode, heldout) if r.trained_tokens]
        self.sample_conversations = heldout[:2]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = list(dict.fromkeys([*end_of_turn_ids(tokenizer), tokenizer.eos_token_id]))
        self.truncated_total = 0
        self.leftover: list[Encoded] = []  # packed examples that did not fit the last batch

    def encode(self, conversation: list[dict]) -> Encoded:
        return encode_conversation(self.ctx.tokenizer, conversation, self.config.seq_len, self.config.assistant_only)

    # --- batches --------------------------------------------------------------------------------

    def _draw(self, n: int) -> list[Encoded]:
        """n encoded conversations with at least one trained token (those cut before it are skipped)."""
        examples, draws = [], 0
        while len(examples) < n:
            if draws >= MAX_DRAWS_PER_ROW * n:
                raise LLMLabError(
                    f"{self.ctx.stage}.seq_len: conversations are cut before their first assistant "
                    f"token at {self.config.seq_len} tokens; raise seq_len"
                )
            encoded = self.encode(self.stream.take(1)[0])
            draws += 1
            self.truncated_total += encoded.truncated
            if encoded.trained_tokens:
                examples.append(encoded)
        return examples

    def next_batch(self) -> dict:
        n = self.config.batch_size
        if not self.config.packing:
            examples = self._draw(n)
            rows = examples
        else:
            rows, examples = [], []
            while len(rows) < n:
                fresh = self._draw(n)
                examples += fresh
                full, self.leftover = pack(self.leftover + fresh, self.config.seq_len)
                rows += full
            self.leftover = rows[n:] + self.leftover
            rows = rows[:n]
        batch = collate(rows, self.pad_id, self.ctx.device)
        batch["truncated"] = sum(e.truncated for e in examples) / len(examples)
        return batch

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        states = head_input(self.module, self.config.fused_loss, input_ids=batch["input_ids"])
        metrics = {
            "truncated": batch["truncated"],
            "trainable_params": float(self.trainable_params),
            "total_params": float(self.total_params),
        }
        return sft_loss(states, batch["labels"], self.config.fused_loss), metrics

    def tokens(self, batch: dict) -> int:
        return batch["tokens"]

    # --- measures -------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Mean loss over the held-out conversations' trained (assistant) tokens."""
        if not self.eval_rows:
            return {}
        total, count = 0.0, 0
        for start in range(0, len(self.eval_rows), self.config.batch_size):
            rows = self.eval_rows[start : start + self.config.batch_size]
            batch = collate(rows, self.pad_id, self.ctx.device)
            states = head_input(self.module, self.config.fused_loss, input_ids=batch["input_ids"])
            total += sft_loss(states, batch["labels"], self.config.fused_loss, reduction="sum").item()
            count += sum(r.trained_tokens - (r.labels[0] != IGNORE) for r in rows)  # the first token has no target
        loss = total / count
        return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "truncated_total": float(self.truncated_total)}

    def answer(self, messages: list[dict], max_new_tokens: int = SAMPLE_TOKENS) -> str:
        """The model's greedy reply to `messages`, stopped at the end of its turn."""
        tokenizer = self.ctx.tokenizer
        ids = torch.tensor([encode_prompt(tokenizer, messages)], device=self.ctx.device)
        output = self.module.generate(
            input_ids=ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
        )
        return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)

    def sample(self) -> list[dict]:
        """Greedy answers to the first user turn of held-out conversations (or to sample_prompt)."""
        prompts = [_before_first_reply(c) for c in self.sample_conversations]
        prompts = [p for p in prompts if p]
        if self.config.sample_prompt:
            prompts = [[{"role": "user", "content": self.config.sample_prompt}]]
        return [{"prompt": p[-1]["content"], "text": self.answer(p)} for p in prompts]

    # --- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        leftover = [{"input_ids": e.input_ids, "labels": e.labels} for e in self.leftover]
        return {"stream": self.stream.state_dict(), "truncated_total": self.truncated_total, "leftover": leftover}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self.truncated_total = state["truncated_total"]
        self.leftover = [Encoded(e["input_ids"], e["labels"], False) for e in state["leftover"]]

    def save(self, model_dir: Path) -> bool:
        """LoRA runs write their adapters (and trained chat-token rows) instead of full weights."""
        if self.uses_lora:
            self.module.save_pretrained(model_dir)
        return self.uses_lora

    def source_shares(self) -> dict[str, dict[str, float]]:
        return self.stream.shares()


def _before_first_reply(conversation: list[dict]) -> list[dict]:
    """The turns before the first assistant turn ([] when there is none)."""
    roles = [m["role"] for m in conversation]
    return conversation[: roles.index("assistant")] if "assistant" in roles else []
