"""LoRA through peft: [stage.lora] presets → target modules, adapters on a model, merging.

Presets name the linear layers that get adapters (`PRESETS`); `custom` names them itself and is
checked against the model's own linear layers. Adapter directories are what peft writes
(adapter_config.json + adapter_model.safetensors, the base model's path inside) with the
tokenizer beside them, so `PeftModel.from_pretrained` and `engine.factory.load_adapter` both load them.
`merge` bakes adapters into a full model directory only after checking that the merged model
gives the adapter model's logits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model

from engine.factory import load_adapter, model_chain
from engine.project.layout import merged_dir
from engine.project.outputs import check_output, output_directory
from engine.project.problems import LLMLabError
from engine.tokenizer import saved_tokenizer

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
FFN = ("gate_proj", "up_proj", "down_proj")
MERGE_TOLERANCE = 1e-4  # largest |logit difference| allowed between adapter and merged model (fp32)
MERGE_WRITTEN_BY = "llmlab merge"  # the merged folders' output marker (engine.project.outputs)
PROBE_SHAPE = (2, 32)  # the random token ids both models read in the merge check


def _present(names: tuple[str, ...], available: set[str]) -> list[str]:
    return [name for name in names if name in available]


# preset → (the model's linear layer names, the custom list) → target modules
PRESETS: dict[str, Callable[[set[str], list[str]], list[str]]] = {
    "minimal": lambda available, custom: ["q_proj", "v_proj"],
    "attention_only": lambda available, custom: list(ATTENTION),
    "ffn_only": lambda available, custom: _present(FFN, available),  # up and down when not gated
    "all": lambda available, custom: _present(ATTENTION + FFN, available),
    "custom": lambda available, custom: list(custom),
}


def linear_module_names(model: torch.nn.Module) -> set[str]:
    """The short names (last path component) of the model's nn.Linear layers."""
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def target_modules(model: torch.nn.Module, cfg, field: str = "lora") -> list[str]:
    """The module names a LoraConfig targets; unknown names are refused, listing the valid ones."""
    available = linear_module_names(model)
    targets = PRESETS[cfg.preset](available, cfg.target_modules)
    if not targets:
        raise LLMLabError(
            f"{field}.target_modules: the custom preset needs at least one module name "
            f"(valid: {', '.join(sorted(available))})"
        )
    unknown = [name for name in targets if name not in available]
    if unknown:
        raise LLMLabError(
            f"{field}.target_modules: no linear layer named {', '.join(map(repr, unknown))} "
            f"in this model (valid: {', '.join(sorted(available))})"
        )
    return targets


def _trainable_token_rows(model: torch.nn.Module, token_ids: list[int]) -> dict[str, list[int]] | None:
    """Embedding rows to train beside the adapters (new chat tokens); an untied head's rows too."""
    if not token_ids:
        return None
    rows = {"embed_tokens": list(token_ids)}
    if not model.config.tie_word_embeddings:
        rows["lm_head"] = list(token_ids)
    return rows


def apply_lora(model: torch.nn.Module, cfg, field: str = "lora", new_token_ids: list[int] | None = None) -> PeftModel:
    """`model` wrapped with LoRA adapters per `cfg` (project LoraConfig); only adapters train.

    `new_token_ids`: rows of freshly added tokens (a chat template's) that train as well, so the
    model can learn to write its end-of-turn token although the embeddings stay frozen.
    """
    peft_config = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=target_modules(model, cfg, field),
        trainable_token_indices=_trainable_token_rows(model, new_token_ids or []),
        task_type="CAUSAL_LM",
    )
    base = Path(str(getattr(model, "name_or_path", "") or ""))
    if str(base) not in ("", ".") and base.exists():
        peft_config.base_model_name_or_path = str(base.resolve())
    return get_peft_model(model, peft_config)


def merged_start(model: torch.nn.Module) -> torch.nn.Module:
    """A starting model loaded from an adapter directory (an un-merged LoRA run named by `init`),
    merged in memory, so a stage continues from exactly the weights that run produced; new
    adapters then train on top (their adapter_config names the earlier adapter directory as base,
    which `load_adapter` merges again on loading). Any other model is returned as is.

    peft loads the adapters frozen and `merge_and_unload` keeps the base frozen, so every weight
    is made trainable again, as a model loaded from a full directory is: a full stage trains all
    of them, and `apply_lora` freezes them again for a LoRA stage."""
    if not isinstance(model, PeftModel):
        return model
    return model.merge_and_unload().requires_grad_(True)


def trainable_module(ctx, new_token_ids: list[int] | None = None) -> torch.nn.Module:
    """What a stage after pretraining trains: the starting model, or LoRA adapters on it.

    On resume the adapters come back from the checkpoint. (A starting model that was an adapter
    directory arrives merged: see `merged_start`.)
    """
    model = ctx.model
    if not ctx.config.lora.enabled:
        return model
    if ctx.resume_dir is not None:
        return PeftModel.from_pretrained(model, ctx.resume_dir, is_trainable=True).to(ctx.device)
    return apply_lora(model, ctx.config.lora, f"{ctx.stage}.lora", new_token_ids).to(ctx.device)


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@dataclass(frozen=True)
class MergeReport:
    out_dir: Path
    max_logit_diff: float


@torch.no_grad()
def merge(
    adapter_dir: str | Path,
    out_dir: str | Path | None = None,
    tolerance: float = MERGE_TOLERANCE,
    overwrite: bool = False,
) -> MergeReport:
    """Bake an adapter directory into a full model directory (default: layout.merged_dir, "<name>-merged").

    The same random tokens go through the adapter model and the merged one (fp32, CPU); if the
    largest logit difference exceeds `tolerance`, nothing is written and LLMLabError is raised.
    `out_dir` follows engine.project.outputs: new or empty, or an earlier merge replaced only
    with `overwrite`; never the adapter directory or a base it loads on.
    """
    adapter_dir = Path(adapter_dir)
    sources = model_chain(adapter_dir)
    out_dir = check_output(
        out_dir or merged_dir(Path(os.path.abspath(adapter_dir))), MERGE_WRITTEN_BY, overwrite, sources
    )
    model = load_adapter(adapter_dir, "cpu", torch.float32).eval()
    tokenizer = saved_tokenizer(adapter_dir, "adapter")
    probe = torch.randint(0, len(tokenizer), PROBE_SHAPE, generator=torch.Generator().manual_seed(0))
    expected = model(input_ids=probe).logits
    merged = model.merge_and_unload()
    diff = (merged(input_ids=probe).logits - expected).abs().max().item()
    if not diff <= tolerance:  # NaN fails too
        raise LLMLabError(
            f"merge: the merged model's logits differ from the adapter model's by up to {diff:.3g} "
            f"(tolerance {tolerance:g}); nothing was written"
        )
    with output_directory(out_dir, MERGE_WRITTEN_BY, overwrite, sources) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return MergeReport(out_dir, diff)
