"""What PPO and GRPO share: a policy that samples rollouts from prompts and is scored by a reward.

`PolicyObjective` sets up the policy (with LoRA when the stage asks), the frozen reference,
the reward, and the prompt streams; it queues the micro-batches each rollout yields, and
implements the parts of the objective protocol (objectives/base.py) that do not depend on the
algorithm: batches, tokens, held-out evaluation, samples, data position, health warnings.
A subclass writes `_rollout_batches()` and `loss(batch)`.
"""

from __future__ import annotations

from collections import deque

import torch

from engine.chat_template import IM_END, IM_START, encode_prompt, end_of_turn_ids, ensure_chat_template
from engine.formats import to_prompt
from engine.lora import trainable_module
from engine.objectives.base import Objective
from engine.objectives.reference import ReferencePolicy
from engine.objectives.rollouts import Rollout, sample_rollouts, score_tokens
from engine.rewards import Reward
from engine.rows import RowStream, load_items

EVAL_PROMPTS = 64  # held-out prompts scored at each evaluation (fewer if the data has fewer)


def convert_prompts(rows: list[dict], source: str):
    return [to_prompt(row, source=source) for row in rows]


def prompt_text(conversation: list[dict]) -> str:
    """A prompt as plain text for a reward model (the turns' contents, in order)."""
    return "\n".join(message["content"] for message in conversation)


def trainable_policy(ctx) -> torch.nn.Module:
    """The starting model made chat-ready, with LoRA adapters when the stage enables them."""
    added = ensure_chat_template(ctx.tokenizer, ctx.model)
    new_ids = ctx.tokenizer.convert_tokens_to_ids([IM_START, IM_END]) if added else []
    return trainable_module(ctx, new_ids)


def save_adapters(policy: torch.nn.Module, model_dir, uses_lora: bool) -> bool:
    """A LoRA policy saves its adapters (the objective's `save`); a full model is the loop's job."""
    if uses_lora:
        policy.save_pretrained(model_dir)
    return uses_lora


class PolicyObjective(Objective):
    def __init__(self, ctx, needs_reference: bool, reference_source: str = ""):
        self.ctx, self.config = ctx, ctx.config
        self.module = self.policy = trainable_policy(ctx)
        self.uses_lora = self.config.lora.enabled
        self.stop_ids = end_of_turn_ids(ctx.tokenizer)
        self.reference = (
            ReferencePolicy.for_stage(ctx, self.policy, self.uses_lora, reference_source) if needs_reference else None
        )
        self.reward = Reward.from_stage(self.config, ctx.project.root, ctx.device)
        sources = load_items(self.config.datasets, ctx.project.root, convert_prompts, f"{ctx.stage}.datasets")
        self.prompts = RowStream(sources, ctx.seed, ctx.rank, ctx.world_size)
        self.eval_rows = self.prompts.heldout(EVAL_PROMPTS)
        self.pending: deque = deque()
        self.rollouts = 0
        self.warned: set[str] = set()

    # --- the protocol -------------------------------------------------------------------------

    def next_batch(self):
        if not self.pending:
            self.pending.extend(self._rollout_batches())
            self.rollouts += 1
        return self.pending.popleft()

    def tokens(self, batch) -> int:
        return int(batch["rollout"].attention_mask.sum())

    def evaluate(self) -> dict[str, float]:
        """Mean reward of greedy answers to the held-out prompts (and the share cut off)."""
        if not self.eval_rows:
            return {}
        rewards, truncated = [], []
        for start in range(0, len(self.eval_rows), self.config.batch_size):
            rows = self.eval_rows[start : start + self.config.batch_size]
            rollout = self.generate([row.prompt for row in rows], 1, 0.0)
            rewards.append(self.reward(self.prompt_texts(rows, 1), rollout.responses, [r.reference for r in rows]))
            truncated.append(rollout.truncated.float())
        return {"reward": torch.cat(rewards).mean().item(), "truncated": torch.cat(truncated).mean().item()}

    def sample(self) -> list[dict]:
        """Greedy answers to two held-out prompts."""
        rows = self.eval_rows[:2]
        if not rows:
            return []
        rollout = self.generate([row.prompt for row in rows], 1, 0.0)
        return [{"prompt": prompt_text(row.prompt), "text": text} for row, text in zip(rows, rollout.responses)]

    def state_dict(self) -> dict:
        return {"prompts": self.prompts.state_dict(), "rollouts": self.rollouts}

    def load_state_dict(self, state: dict) -> None:
        self.prompts.load_state_dict(state["prompts"])
        self.rollouts = state["rollouts"]

    def save(self, model_dir) -> bool:
        return save_adapters(self.policy, model_dir, self.uses_lora)

    def source_shares(self) -> dict[str, dict[str, float]]:
        return self.prompts.shares()

    # --- helpers for the algorithms -------------------------------------------------------------

    def generate(self, prompts: list[list[dict]], repeats: int, temperature: float) -> Rollout:
        """`repeats` responses per prompt conversation (temperature 0: greedy), in one batch."""
        ids = [encode_prompt(self.ctx.tokenizer, prompt) for prompt in prompts]
        return sample_rollouts(
            self.policy,
            self.ctx.tokenizer,
            ids,
            max_new_tokens=self.config.max_new_tokens,
            temperature=temperature,
            stop_ids=self.stop_ids,
            repeats=repeats,
        )

    def reference_logps(self, rollout: Rollout, temperature: float) -> torch.Tensor:
        mode = self.config.fused_loss
        return self.reference.run(lambda model: score_tokens(model, rollout, temperature, mode=mode)[0])

    @staticmethod
    def prompt_texts(rows, repeats: int) -> list[str]:
        return [prompt_text(row.prompt) for row in rows for _ in range(repeats)]

    def minibatches(self, rollout: Rollout, fields: dict, stats: dict, epochs: int, size: int):
        """`epochs` shuffled passes over the rollout's rows in mini-batches of `size` rows.

        Each also carries `input_ids` and response-only `labels`, the token view of the batch that
        optimizers reading batches (Sophia's Hessian estimate) understand.
        """
        generator = torch.Generator().manual_seed(self.ctx.seed * 100_003 + self.rollouts)
        rows = rollout.input_ids.shape[0]
        for _ in range(epochs):
            order = torch.randperm(rows, generator=generator)
            for start in range(0, rows, size):
                index = order[start : start + size].to(rollout.input_ids.device)
                batch = {name: None if value is None else value[index] for name, value in fields.items()}
                part = rollout.select(index)
                labels = torch.full_like(part.input_ids, -100)
                labels[:, part.prompt_length :] = part.response_ids.masked_fill(part.response_mask == 0, -100)
                yield dict(batch, rollout=part, stats=stats, input_ids=part.input_ids, labels=labels)

    def check_health(self, stats: dict) -> None:
        """Warn (once per kind) when a rollout shows a run that cannot learn or is going wrong."""
        checks = {
            "truncated": (
                stats["truncated"] >= 1.0,
                "every response was cut at max_new_tokens: the model never ends its turn "
                "(is the prompt chat-formatted? was the init model fine-tuned to stop?)",
            ),
            "zero_variance": (
                stats.get("zero_variance_groups", 0.0) > 0.5,
                "most groups have zero reward variance: no learning signal (make the task easier "
                "or harder, raise group_size or temperature)",
            ),
            "entropy": (
                stats.get("entropy", 1.0) < 0.05,
                "the policy's entropy is collapsing: it has stopped exploring (lower lr, raise kl_coef)",
            ),
            "kl": (
                stats.get("kl", 0.0) > 10.0,
                "KL to the reference is growing without bound: lower lr or raise kl_coef",
            ),
        }
        for name, (bad, message) in checks.items():
            if bool(bad) and name not in self.warned:
                self.warned.add(name)
                self.ctx.log(message, "warning")
