"""Break it on purpose: remove an attention head, an MLP or a whole block and measure the held-out loss.

An ablation replaces a component's contribution with zero, or with its mean over the held-out batches
(mean ablation keeps the average signal, so it measures what the component adds per token). Forward
hooks do it, and are removed after: the model is unchanged.

- a head: its slice of o_proj's input (the head's output before the output projection)
- an MLP: its output (what it adds to the residual stream)
- a block: everything it adds (attention and MLP): the block's output minus its input

`save_ablated` writes zero-ablated weights as a new model folder (a head's o_proj columns, an MLP's
down_proj, both for a block), which loads and chats like any model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.inspection.hooks import hooked
from engine.inspection.render import ABLATION_MODES
from engine.objectives.pretrain import next_token_loss
from engine.project.outputs import output_directory
from engine.project.problems import LLMLabError

KINDS = ("head", "mlp", "block")
SAVED_BY = "llmlab inspect ablate"  # the output marker of a saved ablated model (engine.project.outputs)


@dataclass(frozen=True)
class Component:
    kind: str  # head | mlp | block
    layer: int
    head: int | None = None

    @property
    def name(self) -> str:
        return f"L{self.layer}.H{self.head}" if self.kind == "head" else f"L{self.layer}.{self.kind}"


def parse_component(text: str, config) -> Component:
    """`L1.H3`, `L0.mlp` or `L2.block` (layers and heads count from 0) → a Component of this model."""
    layer, _, part = text.partition(".")
    try:
        index = int(layer[1:]) if layer[:1] in "Ll" else -1
        kind, head = ("head", int(part[1:])) if part[:1] in "Hh" else (part.lower(), None)
    except ValueError:
        index, kind, head = -1, "", None
    rule = "L<layer>.H<head>, L<layer>.mlp or L<layer>.block"
    if not (0 <= index < config.num_hidden_layers) or kind not in KINDS:
        raise LLMLabError(f"--ablate: {text!r} is not {rule} with a layer below {config.num_hidden_layers}")
    if head is not None and not (0 <= head < config.num_attention_heads):
        raise LLMLabError(f"--ablate: {text!r}: the model has heads 0-{config.num_attention_heads - 1}")
    return Component(kind, index, head)


def check_mode(mode: str) -> None:
    if mode not in ABLATION_MODES:
        raise LLMLabError(f"--mode: {mode!r} is not one of {', '.join(ABLATION_MODES)}")


def every_component(config) -> list[Component]:
    """Each head of each layer, each MLP and each block."""
    layers = range(config.num_hidden_layers)
    heads = [Component("head", layer, h) for layer in layers for h in range(config.num_attention_heads)]
    return heads + [Component(kind, layer) for kind in ("mlp", "block") for layer in layers]


def _head_slice(model, head: int) -> slice:
    size = model.config.hidden_size // model.config.num_attention_heads
    return slice(head * size, (head + 1) * size)


@contextlib.contextmanager
def ablated(model, components: Sequence[Component], means: dict | None = None) -> Iterator[None]:
    """Inside: each component's contribution is zero, or its mean from `activation_means` when given."""

    def replace(key, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(like) if means is None else means[key].to(like.dtype).expand_as(like)

    def head_hook(component):
        def hook(module, args):
            y = args[0].clone()  # (B, T, H * D), the heads' outputs side by side
            part = _head_slice(model, component.head)
            y[..., part] = replace(("head", component.layer), y)[..., part]
            return (y,)

        return hook

    def output_hook(key):
        return lambda module, args, output: replace(key, output)

    def block_hook(key):
        return lambda module, args, output: args[0] + replace(key, output)

    handles = []
    for c in components:
        layer = model.model.layers[c.layer]
        if c.kind == "head":
            handles.append(layer.self_attn.o_proj.register_forward_pre_hook(head_hook(c)))
        elif c.kind == "mlp":
            handles.append(layer.mlp.register_forward_hook(output_hook(("mlp", c.layer))))
        else:
            handles.append(layer.register_forward_hook(block_hook(("block", c.layer))))
    with hooked(handles):
        yield


@torch.no_grad()
def activation_means(model, batches) -> dict[tuple[str, int], torch.Tensor]:
    """Per layer, the mean over every held-out token of: the heads' outputs (o_proj's input, H * D wide),
    the MLP's output and the block's contribution (output minus input), each (C,) or (H * D,)."""
    sums: dict[tuple[str, int], torch.Tensor] = {}
    count = 0

    def add(key, value):
        total = value.float().sum(dim=(0, 1))
        sums[key] = sums[key] + total if key in sums else total

    handles = []
    for i, layer in enumerate(model.model.layers):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a, i=i: add(("head", i), a[0])))
        handles.append(layer.mlp.register_forward_hook(lambda m, a, out, i=i: add(("mlp", i), out)))
        handles.append(layer.register_forward_hook(lambda m, a, out, i=i: add(("block", i), out - a[0])))
    with hooked(handles):
        for batch in batches:
            model(input_ids=batch.input_ids.to(model.device), use_cache=False)
            count += batch.input_ids.numel()
    return {key: total / count for key, total in sums.items()}


@torch.no_grad()
def held_out_loss(model, batches) -> float:
    """Mean next-token loss (nats) over every target of `batches`, as the pretraining evaluation sums it."""
    nll = torch.zeros((), dtype=torch.float64, device=model.device)
    for batch in batches:
        ids, targets = batch.input_ids.to(model.device), batch.targets.to(model.device)
        nll += next_token_loss(model, ids, targets, reduction="sum")
    return nll.item() / sum(batch.num_tokens for batch in batches)


def ablation_table(model, batches, mode: str = "zero", groups: Sequence[Sequence[Component]] | None = None) -> dict:
    """The baseline held-out loss and the loss with each group of components ablated together
    (default: every component on its own), sorted by damage (loss increase), largest first."""
    check_mode(mode)
    means = activation_means(model, batches) if mode == "mean" else None
    baseline = held_out_loss(model, batches)
    rows = []
    for group in groups or [[c] for c in every_component(model.config)]:
        with ablated(model, group, means):
            loss = held_out_loss(model, batches)
        name, kind = "+".join(c.name for c in group), "+".join(c.kind for c in group)
        rows.append({"component": name, "kind": kind, "loss": loss, "damage": loss - baseline})
    rows.sort(key=lambda row: math.inf if math.isnan(row["damage"]) else -row["damage"])  # nan last
    tokens = sum(batch.num_tokens for batch in batches)
    return {"mode": mode, "baseline": baseline, "tokens": tokens, "rows": rows}


@torch.no_grad()
def zero_weights(model, components: Sequence[Component]) -> None:
    """Edit the weights so that each component contributes nothing: what `ablated` does with zeros."""
    for c in components:
        layer = model.model.layers[c.layer]
        if c.kind in ("head", "block"):
            o_proj = layer.self_attn.o_proj
            columns = _head_slice(model, c.head) if c.kind == "head" else slice(None)
            o_proj.weight[:, columns] = 0
            if c.kind == "block" and o_proj.bias is not None:
                o_proj.bias.zero_()
        if c.kind in ("mlp", "block"):
            layer.mlp.down_proj.weight.zero_()
            if layer.mlp.down_proj.bias is not None:
                layer.mlp.down_proj.bias.zero_()


def save_ablated(model, tokenizer, components: Sequence[Component], out: str | Path, source: str | Path) -> Path:
    """A new model folder at `out` holding `model` with `components` zero-ablated in its weights
    (`model` itself is edited). Never replaces a folder it did not write (engine.project.outputs)."""
    if not components:
        raise LLMLabError("--save: name the components to remove with --ablate")
    zero_weights(model, components)
    with output_directory(out, SAVED_BY, sources=[source], field="--save") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out).expanduser().resolve()
