"""Rewards for PPO and GRPO: rule rewards that work offline, reward models, and their sum.

A stage's reward is the weighted sum of its rules (`reward_rules`: a rule name, or a table with
`name`, `weight` and the rule's own options) plus the score of its reward model (`reward_model`:
any `AutoModelForSequenceClassification` by hub id or local path, with its own tokenizer). The
policy's text is decoded before it gets here, so a reward model re-tokenizes it in its own way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.project.problems import LLMLabError

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_number(text: str) -> float | None:
    """The answer number in `text`: what follows GSM8K's '####' if present, else the last number."""
    tail = text.rsplit("####", 1)[-1]
    found = NUMBER.findall(tail)
    return float(found[-1].replace(",", "")) if found else None


def normalize_text(text: str) -> str:
    return re.sub(r"[\s.!?]+$", "", " ".join(text.lower().split()))


def exact_match(response: str, answer: str | None, **options) -> float:
    """1.0 when the response gives the reference answer: numerically when both hold numbers."""
    if answer is None:
        raise LLMLabError("reward_rules.exact_match: needs a reference-answer column (answer) in the prompt dataset")
    expected = extract_number(str(answer))
    if expected is not None:
        got = extract_number(response)
        return float(got is not None and abs(got - expected) < 1e-6)
    return float(normalize_text(response) == normalize_text(str(answer)))


def regex_match(response: str, answer: str | None, pattern: str = "", **options) -> float:
    """1.0 when the response contains a match of `pattern`."""
    return float(re.search(pattern, response) is not None)


def length_target(response: str, answer: str | None, target: int = 32, **options) -> float:
    """1 at `target` words, falling linearly to 0 at zero or twice the target."""
    return max(0.0, 1.0 - abs(len(response.split()) - target) / target)


RULES: dict[str, Callable[..., float]] = {"exact_match": exact_match, "regex": regex_match, "length": length_target}
RULE_OPTIONS = {"exact_match": set(), "regex": {"pattern"}, "length": {"target"}}


@dataclass(frozen=True)
class Rule:
    name: str
    weight: float
    options: dict

    def __call__(self, response: str, answer: str | None) -> float:
        return self.weight * RULES[self.name](response, answer, **self.options)


def build_rule(spec: str | dict, field: str = "reward_rules") -> Rule:
    """A rule from its project.toml form: "exact_match" or {name = "regex", pattern = "...", weight = 0.5}."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in RULES:
        raise LLMLabError(f"{field}: unknown rule {name!r} (known rules: {', '.join(RULES)})")
    weight = float(spec.pop("weight", 1.0))
    unknown = set(spec) - RULE_OPTIONS[name]
    if unknown:
        raise LLMLabError(f"{field}.{name}: unknown option(s) {', '.join(sorted(unknown))}")
    if name == "regex":
        try:
            re.compile(spec.get("pattern", ""))
        except re.error as error:
            raise LLMLabError(f"{field}.regex.pattern: not a valid regular expression ({error})") from None
    return Rule(name, weight, spec)


class RewardModel:
    """A sequence-classification reward model scoring (prompt, response) text pairs."""

    def __init__(self, source: str, root: Path | None, device, trust_remote_code: bool = False, batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        local = (root / source) if root is not None else Path(source)
        path = str(local) if local.exists() else source
        try:  # the setting is always passed: transformers never asks on stdin whether to run code
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as error:  # offline hub id, not a model, a causal LM, ...
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            if reason.startswith("Unrecognized configuration class"):
                reason = "it is not a sequence-classification model (a causal LM cannot score (prompt, response) pairs)"
            raise LLMLabError(f"reward_model: cannot load {source!r}: {reason}") from error
        self.model.to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def score(self, prompts: Sequence[str], responses: Sequence[str]):
        """One score per pair: the first logit, the prompt and response given as a text pair."""
        import torch

        scores = []
        with torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                inputs = self.tokenizer(
                    list(prompts[start : start + self.batch_size]),
                    list(responses[start : start + self.batch_size]),
                    truncation=True,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                scores.append(self.model(**inputs).logits[:, 0].float().cpu())
        return torch.cat(scores) if scores else torch.zeros(0)


class Reward:
    """The stage's whole reward: weighted rules plus the reward model's score."""

    def __init__(self, rules: list[Rule], model: RewardModel | None = None):
        if not rules and model is None:
            raise LLMLabError("reward_rules: a stage needs a reward_model, reward_rules, or both")
        self.rules = rules
        self.model = model

    @classmethod
    def from_stage(cls, stage, root: Path, device) -> Reward:
        rules = [build_rule(spec) for spec in stage.reward_rules]
        model = (
            RewardModel(stage.reward_model, root, device, stage.reward_trust_remote_code)
            if stage.reward_model
            else None
        )
        return cls(rules, model)

    def __call__(self, prompts: Sequence[str], responses: Sequence[str], answers: Sequence[str | None]):
        """A float tensor of rewards, one per response."""
        import torch

        totals = torch.tensor(
            [sum(rule(response, answer) for rule in self.rules) for response, answer in zip(responses, answers)],
            dtype=torch.float32,
        )
        if self.model is not None:
            totals = totals + self.model.score(prompts, responses)
        return totals
