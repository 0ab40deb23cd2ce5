"""The four views of `llmlab inspect` (and of the app's inspect screen, through engine.task_worker):
each loads nothing itself and returns plain data; `inspect` loads the model folder and runs one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.inspection import ablation
from engine.inspection.attention import attention_report
from engine.inspection.heldout import file_batches, project_heldout
from engine.inspection.lens import logit_lens
from engine.inspection.loading import load_inspectable
from engine.inspection.tokens import surprise
from engine.project.problems import LLMLabError


def ablate(
    model,
    tokenizer,
    model_dir: str | Path,
    data: str | None = None,
    batches: int = 4,
    seq_len: int = 128,
    batch_size: int = 8,
    mode: str = "zero",
    components: list[str] | None = None,
    save: str | None = None,
) -> dict:
    """The damage table (every component, or the `components` named, ablated together), on `data`
    (a text file) or the eval split of the model's run; `save` keeps the zero-ablated model."""
    if batches < 1:
        raise LLMLabError(f"--batches: must be at least 1, got {batches}")
    ablation.check_mode(mode)
    named = [ablation.parse_component(text, model.config) for text in components or []]
    if save and (not named or mode != "zero"):  # refused before any data is read
        raise LLMLabError("--save: keeps a zero ablation of the components named with --ablate (--mode zero)")
    if data:
        held = file_batches(tokenizer, data, min(seq_len, model.config.max_position_embeddings), batch_size, batches)
    else:
        held = project_heldout(model_dir, tokenizer, batches)
    if not named:
        return ablation.ablation_table(model, held, mode)
    report = ablation.ablation_table(model, held, mode, [named])
    if save:
        report["saved"] = str(ablation.save_ablated(model, tokenizer, named, save, source=model_dir))
    return report


def tokens(model, tokenizer, model_dir, prompt: str, top_k: int = 5, worst: int = 5) -> dict:
    return surprise(model, tokenizer, prompt, top_k, worst)


def attention(
    model,
    tokenizer,
    model_dir,
    prompt: str,
    layer: int = 0,
    head: int = 0,
    induction_length: int = 32,
    every_head: bool = False,
):
    return attention_report(model, tokenizer, prompt, layer, head, induction_length, every_head)


def lens(model, tokenizer, model_dir, prompt: str) -> dict:
    return logit_lens(model, tokenizer, prompt)


VIEWS: dict[str, Callable[..., dict]] = {"tokens": tokens, "attention": attention, "lens": lens, "ablate": ablate}


def inspect_model(model_dir: str | Path, view: str, device: str | None = None, **options) -> dict:
    """Load `model_dir` on `device` (default: CUDA when present) and return VIEWS[view]'s report."""
    from engine.device import pick_device

    if view not in VIEWS:
        raise LLMLabError(f"view: {view!r} is not one of {', '.join(VIEWS)}")
    model, tokenizer = load_inspectable(model_dir, pick_device(device))
    return {"view": view, "model": str(model_dir), **VIEWS[view](model, tokenizer, model_dir, **options)}
