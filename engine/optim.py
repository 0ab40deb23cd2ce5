"""Optimizers and learning-rate schedules: a stage's [optimizer] and [scheduler] tables → torch.

`build_optimizer(model, cfg, lr)` gives one `torch.optim.Optimizer` for every name in
OPTIMIZER_DEFAULTS (engine/project/schema.py), through the BUILDERS registry; `build_scheduler` gives a
LambdaLR driven by the pure `lr_at`, which the app's preview and the tests call too. Parameter
groups are named (torch's `param_names`), so tests and logs can say which tensor went where.

The loop's side (engine/trainer.py), the same for every optimizer:

    for each micro-batch: (loss / grad_accum).backward()
    with precision.autocast():
        before_step(optimizer, objective.module, batch)   # the step's last micro-batch
    clip; optimizer.step(); scheduler.step(); optimizer.zero_grad()

`before_step` does nothing except for Sophia, which refreshes its Hessian estimate there every
`hessian_update_period` steps (one extra forward/backward; `.grad` is left untouched). Pass the
unwrapped module (not the DDP wrapper): the estimate is averaged across ranks here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_optimizer import Lion, SophiaH
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from engine.project import OPTIMIZER_DEFAULTS, SCHEDULER_DEFAULTS, OptimizerConfig, SchedulerConfig
from engine.project.problems import LLMLabError

NamedParams = list[tuple[str, torch.Tensor]]


# ---------------------------------------------------------------------------------------------
# which parameter goes where


def _trainable(model: nn.Module) -> NamedParams:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def _linear_matrices(model: nn.Module) -> set[torch.Tensor]:
    """Weights of Linear layers that are not also embedding tables (a tied head is an embedding)."""
    embeddings = {m.weight for m in model.modules() if isinstance(m, nn.Embedding)}
    return {m.weight for m in model.modules() if isinstance(m, nn.Linear)} - embeddings


def _hidden_matrices(model: nn.Module) -> set[torch.Tensor]:
    """The 2-D matrices inside the network that Muon may orthogonalise: not the output head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = {head.weight} if head is not None else set()
    return {w for w in _linear_matrices(model) if w.ndim == 2} - head_weight


def _split(params: NamedParams, chosen: set[torch.Tensor]) -> tuple[NamedParams, NamedParams]:
    """(params in `chosen`, the others), each in model order."""
    return [(n, p) for n, p in params if p in chosen], [(n, p) for n, p in params if p not in chosen]


def _decay_groups(model: nn.Module, params: NamedParams, weight_decay: float) -> list[dict]:
    """Weight decay on Linear matrices only; none on norms, biases and embeddings."""
    decay, no_decay = _split(params, _linear_matrices(model))
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


# ---------------------------------------------------------------------------------------------
# the optimizers; each builder takes every setting of its OPTIMIZER_DEFAULTS entry by keyword


def _adamw(
    model: nn.Module, params: NamedParams, lr: float, *, betas: list[float], eps: float, weight_decay: float
) -> torch.optim.Optimizer:
    # the fused kernel on CPU and CUDA alike: on the CPU the foreach path loops op by op over the
    # tensors, and `llmlab bench train` measured the fused step 7x faster there
    return torch.optim.AdamW(_decay_groups(model, params, weight_decay), lr=lr, betas=tuple(betas), eps=eps, fused=True)


def _adafactor(
    model: nn.Module, params: NamedParams, lr: float, *, beta2_decay: float, eps2: float, d: float, weight_decay: float
) -> torch.optim.Optimizer:
    return torch.optim.Adafactor(
        _decay_groups(model, params, weight_decay), lr=lr, beta2_decay=beta2_decay, eps=(None, eps2), d=d, foreach=True
    )


def _lion(
    model: nn.Module, params: NamedParams, lr: float, *, betas: list[float], weight_decay: float
) -> torch.optim.Optimizer:
    return Lion(_decay_groups(model, params, weight_decay), lr=lr, betas=tuple(betas))


def _sophia(
    model: nn.Module,
    params: NamedParams,
    lr: float,
    *,
    betas: list[float],
    rho: float,
    weight_decay: float,
    hessian_update_period: int,
) -> torch.optim.Optimizer:
    return SophiaG(
        _decay_groups(model, params, weight_decay),
        lr=lr,
        betas=tuple(betas),
        rho=rho,
        update_period=hessian_update_period,
    )


def _muon(
    model: nn.Module,
    params: NamedParams,
    lr: float,
    *,
    momentum: float,
    nesterov: bool,
    ns_steps: int,
    weight_decay: float,
    adjust_lr_fn: str,
    adamw_lr: float,
    adamw_betas: list[float],
    adamw_weight_decay: float,
) -> torch.optim.Optimizer:
    hidden, rest = _split(params, _hidden_matrices(model))
    if not hidden:
        raise LLMLabError("optimizer.name: muon found no 2-D hidden matrices to update")
    parts = {
        "muon": torch.optim.Muon(
            hidden,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=nesterov,
            ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn,
        )
    }
    if rest:
        parts["adamw"] = _adamw(model, rest, adamw_lr, betas=adamw_betas, eps=1e-8, weight_decay=adamw_weight_decay)
    return Composite(parts)


BUILDERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "adafactor": _adafactor,
    "lion": _lion,
    "sophia": _sophia,
    "muon": _muon,
}


def _settings(kind: str, name: str, given: Mapping[str, Any], defaults: dict[str, dict]) -> dict:
    """`given` over the defaults of `name`; an unknown name or setting is refused, never ignored."""
    if name not in defaults:
        raise LLMLabError(f"{kind}.name: must be one of {', '.join(defaults)}, got {name!r}")
    known = defaults[name]
    unknown = [key for key in given if key not in known]
    if unknown:
        allowed = ", ".join(known) or "none"
        raise LLMLabError([f"{kind}.{key}: unknown setting for {name} (known: {allowed})" for key in unknown])
    return {**known, **given}


def build_optimizer(model: nn.Module, cfg: OptimizerConfig, lr: float) -> torch.optim.Optimizer:
    """The stage's optimizer over `model`'s trainable parameters; the first group has lr `lr`."""
    options = _settings("optimizer", cfg.name, cfg.options, OPTIMIZER_DEFAULTS)
    params = _trainable(model)
    if not params:
        raise LLMLabError("optimizer: the model has no trainable parameters")
    return BUILDERS[cfg.name](model, params, lr, **options)


def before_step(optimizer: torch.optim.Optimizer, model: nn.Module, batch: Any) -> None:
    """Work an optimizer needs between backward and step (Sophia's Hessian refresh); else nothing."""
    hook = getattr(optimizer, "before_step", None)
    if hook is not None:
        hook(model, batch)


# ---------------------------------------------------------------------------------------------
# Muon + AdamW as one optimizer


class Composite(torch.optim.Optimizer):
    """Optimizers over disjoint parameters, stepped, zeroed, saved and scheduled as one.

    `param_groups` are the parts' own group dicts (shared, not copied), so a scheduler that sets
    each group's lr drives every part, each from its own initial lr.
    """

    def __init__(self, parts: dict[str, torch.optim.Optimizer]):
        self.parts = parts
        super().__init__([g for part in parts.values() for g in part.param_groups], {})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts.values():
            part.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {name: part.state_dict() for name, part in self.parts.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for name, part in self.parts.items():
            part.load_state_dict(state_dict[name])
        self.regroup()

    def regroup(self) -> None:
        """Share the parts' group dicts again, after loading state gave them new ones."""
        self.param_groups = [g for part in self.parts.values() for g in part.param_groups]


# ---------------------------------------------------------------------------------------------
# Sophia


class SophiaG(SophiaH):
    """Sophia (Liu et al. 2023, "Sophia: A Scalable Stochastic Second-order Optimizer") with the
    Gauss-Newton-Bartlett estimator of the diagonal Hessian (Sophia-G, Algorithm 2).

    The update rule, state and clipping are pytorch-optimizer's SophiaH (maintained); only the
    estimator is ours. SophiaH's own Hutchinson estimator needs `backward(create_graph=True)`,
    and scaled_dot_product_attention has no double backward (measured: "derivative for
    _scaled_dot_product_flash_attention_for_cpu_backward is not implemented", and CUDA's flash
    kernels are the same); it would also double the activation memory and does not mix with DDP
    or compile. Sophia-G needs one ordinary extra forward/backward every k steps, and is the
    variant the paper recommends for language models.

    Every `update_period` steps, `before_step` samples labels ŷ from the model's own logits,
    takes ĝ = ∇ mean CE(logits, ŷ), and hands SophiaH `rho · N · ĝ²` (N tokens; the reference
    code's `bs`) as the estimate. With SophiaH's clip p = 1 its update is the paper's
    `lr · clip(m / max(rho · N · h, eps), 1)`, h the EMA of N·ĝ² (refreshed only on those steps).
    """

    def __init__(self, params: list[dict], lr: float, betas: tuple[float, float], rho: float, update_period: int):
        super().__init__(params, lr=lr, betas=betas, p=1.0, update_period=update_period)
        self.rho = rho
        self._estimate: list[torch.Tensor] | None = None

    def hessian_due(self) -> bool:
        """True when the coming step refreshes the estimate (steps 0, k, 2k, ... of this optimizer)."""
        return self.param_groups[0].get("step", 0) % self.update_period == 0

    def before_step(self, model: nn.Module, batch: Any) -> None:
        if self.hessian_due():
            params = [p for group in self.param_groups for p in group["params"]]
            self._estimate = [self.rho * h for h in gauss_newton_bartlett(model, batch, params)]

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        if self.hessian_due() and self._estimate is None:
            raise RuntimeError("sophia: call engine.optim.before_step(optimizer, model, batch) before step()")
        estimate, self._estimate = self._estimate, None
        return super().step(closure, hessian=estimate)


def gauss_newton_bartlett(
    model: nn.Module, batch: Mapping[str, torch.Tensor], params: list[torch.Tensor]
) -> list[torch.Tensor]:
    """N·ĝ² per parameter: ĝ the gradient of the mean loss on labels sampled from the model.

    `batch` holds `input_ids` and optionally `targets`, `labels` or `attention_mask` (see
    `_trained_logits`); the N trained-on positions are the samples. Averaged across DDP ranks.
    """
    if not isinstance(batch, Mapping) or "input_ids" not in batch:
        raise LLMLabError("optimizer.name: sophia needs batches of token ids (pretrain, sft)")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    logits = _trained_logits(logits, batch).float()  # (N, vocab)
    with torch.no_grad():
        sampled = torch.multinomial(logits.softmax(-1), 1).squeeze(-1)  # (N,)
    grads = torch.autograd.grad(F.cross_entropy(logits, sampled), params, allow_unused=True)
    estimate = [torch.zeros_like(p) if g is None else logits.shape[0] * g.square() for g, p in zip(grads, params)]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for h in estimate:  # SUM, then divide: gloo has no AVG
            torch.distributed.all_reduce(h)
            h.div_(torch.distributed.get_world_size())
    return estimate


def _trained_logits(logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(N, vocab) from (B, T, vocab): the positions whose next-token prediction is trained on.

    `targets` line up with the logits (pretraining); `labels` are the input ids themselves (the
    Hugging Face convention, so position t predicts labels[t + 1]); -100 marks an ignored token.
    """
    if batch.get("targets") is not None:
        return logits[batch["targets"] != -100]
    if batch.get("labels") is not None:
        return logits[:, :-1][batch["labels"][:, 1:] != -100]
    if batch.get("attention_mask") is not None:
        return logits[:, :-1][batch["attention_mask"][:, 1:].bool()]
    return logits[:, :-1].flatten(0, 1)


# ---------------------------------------------------------------------------------------------
# schedules: linear warmup, then the named decay from lr to min_lr over the remaining steps


def _constant(progress: float, lr: float) -> float:
    return lr


def _cosine(progress: float, lr: float, min_lr: float) -> float:
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def _linear(progress: float, lr: float, min_lr: float) -> float:
    return lr - progress * (lr - min_lr)


def _polynomial(progress: float, lr: float, power: float, min_lr: float) -> float:
    return min_lr + (lr - min_lr) * (1.0 - progress) ** power


SCHEDULES: dict[str, Callable[..., float]] = {
    "none": _constant,
    "cosine": _cosine,
    "linear": _linear,
    "polynomial": _polynomial,
}


def lr_at(
    step: int, base_lr: float, name: str, options: Mapping[str, Any], warmup_steps: int, total_steps: int
) -> float:
    """The lr of optimizer step `step` (0-based).

    Warmup as nanoGPT: lr·(step+1)/(warmup+1) for step < warmup (the first step already moves);
    then progress = (step - warmup)/(total - warmup), clamped to [0, 1], through the schedule.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / (warmup_steps + 1)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return SCHEDULES[name](progress, base_lr, **options)


def lr_lambda(base_lr: float, cfg: SchedulerConfig, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LambdaLR's multiplier: lr_at / base_lr, so every group scales from its own initial lr."""
    options = _settings("scheduler", cfg.name, cfg.options, SCHEDULER_DEFAULTS)
    return lambda step: lr_at(step, base_lr, cfg.name, options, warmup_steps, total_steps) / base_lr


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """A LambdaLR over `optimizer`; the stage lr (min_lr is relative to it) is its first group's."""
    base_lr = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
    return LambdaLR(optimizer, lr_lambda(base_lr, cfg, warmup_steps, total_steps))
