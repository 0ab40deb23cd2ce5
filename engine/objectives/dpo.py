"""DPO (Rafailov et al. 2023): learn from preference pairs without a reward model.

Each micro-batch holds `batch_size` pairs, encoded as prompt + chosen and prompt + rejected with
the chat template; only the response tokens (the assistant turns after the prompt, each with its
end-of-turn token) count toward a sequence's log-probability. The reference is the `reference`
model, or the starting policy frozen (with LoRA: the same model with its adapters disabled).
The loss (sigmoid, hinge or ipo, optional label smoothing) is engine.losses.dpo_loss; ipo gets
each response's token count, as it compares log-ratios averaged per token.
"""

from __future__ import annotations

import torch

from engine.chat_template import IGNORE, encode_conversation, encode_prompt, end_of_turn_ids
from engine.formats import to_preference
from engine.logprobs import head_input, token_logprobs
from engine.losses import dpo_loss
from engine.objectives.base import Objective
from engine.objectives.policy import prompt_text, save_adapters, trainable_policy
from engine.objectives.reference import ReferencePolicy
from engine.objectives.rollouts import sample_rollouts
from engine.rows import RowStream, load_items


def convert_pairs(rows: list[dict], source: str):
    return [to_preference(row, source=source) for row in rows]


def right_pad(sequences: list[list[int]], value: int, device) -> torch.Tensor:
    width = max(len(s) for s in sequences)
    return torch.tensor([s + [value] * (width - len(s)) for s in sequences], dtype=torch.long, device=device)


class DPOObjective(Objective):
    def __init__(self, ctx):
        self.ctx, self.config = ctx, ctx.config
        self.module = trainable_policy(ctx)
        self.uses_lora = self.config.lora.enabled
        self.reference = ReferencePolicy.for_stage(ctx, self.module, self.uses_lora, self.config.reference)
        sources = load_items(self.config.datasets, ctx.project.root, convert_pairs, "dpo.datasets")
        self.pairs = RowStream(sources, ctx.seed, ctx.rank, ctx.world_size)
        self.eval_pairs = self.pairs.heldout(self.config.eval_batches * self.config.batch_size)

    def encode(self, pairs) -> dict:
        """2B sequences (chosen ones first), right-padded, labels only on the responses."""
        tok, max_len = self.ctx.tokenizer, self.config.seq_len
        encoded = [
            encode_conversation(tok, pair.prompt + response, max_len, trained_from=len(pair.prompt))
            for responses in ([p.chosen for p in pairs], [p.rejected for p in pairs])
            for pair, response in zip(pairs, responses)
        ]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = self.ctx.device
        return {
            "input_ids": right_pad([e.input_ids for e in encoded], pad, device),
            "attention_mask": right_pad([[1] * len(e.input_ids) for e in encoded], 0, device),
            "labels": right_pad([e.labels for e in encoded], IGNORE, device),
            "truncated": sum(e.truncated for e in encoded),
        }

    def sequence_logps(self, model, batch) -> torch.Tensor:
        """Summed log-probability of each sequence's trained tokens: (2B,)."""
        mode = self.config.fused_loss
        states = head_input(model, mode, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return token_logprobs(states.positions(None, -1), batch["labels"][:, 1:], mode).sum(1)

    def next_batch(self):
        return self.encode(self.pairs.take(self.config.batch_size))

    def tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum())

    def loss(self, batch):
        cfg = self.config
        policy = self.sequence_logps(self.module, batch)
        reference = self.reference.run(lambda model: self.sequence_logps(model, batch))
        n = policy.shape[0] // 2
        lengths = (batch["labels"][:, 1:] != IGNORE).sum(1)  # (2B,) trained tokens of each sequence
        losses, chosen, rejected = dpo_loss(
            policy[:n],
            policy[n:],
            reference[:n],
            reference[n:],
            cfg.beta,
            cfg.loss_type,
            cfg.label_smoothing,
            lengths=(lengths[:n], lengths[n:]),
        )
        metrics = {
            "rewards/chosen": chosen.mean(),
            "rewards/rejected": rejected.mean(),
            "rewards/accuracy": (chosen > rejected).float().mean(),
            "rewards/margin": (chosen - rejected).mean(),
            "truncated": batch["truncated"],
        }
        return losses.mean(), metrics

    def evaluate(self) -> dict[str, float]:
        """Held-out loss, preference accuracy and margin."""
        totals = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
        size = self.config.batch_size
        for start in range(0, len(self.eval_pairs), size):
            loss, metrics = self.loss(self.encode(self.eval_pairs[start : start + size]))
            count = len(self.eval_pairs[start : start + size])
            totals["loss"] += loss.item() * count
            totals["accuracy"] += metrics["rewards/accuracy"].item() * count
            totals["margin"] += metrics["rewards/margin"].item() * count
        return {name: value / max(len(self.eval_pairs), 1) for name, value in totals.items()}

    def sample(self) -> list[dict]:
        """A greedy answer to one held-out prompt."""
        if not self.eval_pairs:
            return []
        prompt = self.eval_pairs[0].prompt
        rollout = sample_rollouts(
            self.module,
            self.ctx.tokenizer,
            [encode_prompt(self.ctx.tokenizer, prompt)],
            max_new_tokens=64,
            temperature=0.0,
            stop_ids=end_of_turn_ids(self.ctx.tokenizer),
        )
        return [{"prompt": prompt_text(prompt), "text": rollout.responses[0]}]

    def state_dict(self) -> dict:
        return {"pairs": self.pairs.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.pairs.load_state_dict(state["pairs"])

    def save(self, model_dir) -> bool:
        return save_adapters(self.module, model_dir, self.uses_lora)

    def source_shares(self) -> dict[str, dict[str, float]]:
        return self.pairs.shares()
