"""Held-out batches to measure a model on (ablation): a text file cut into rows, or the eval split of
the project whose run wrote the model, exactly the batches that run evaluated on."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.data import pretraining_data
from engine.packing import PackedBatch
from engine.project import apply_overrides, project_from_dict, read_toml
from engine.project.layout import PROJECT_FILE
from engine.project.problems import LLMLabError
from engine.tokenizer import token_byte_lengths


def text_batches(tokenizer, text: str, seq_len: int, batch_size: int, max_batches: int) -> list[PackedBatch]:
    """EOS + the text's tokens in rows of seq_len targets (rows overlap by one token, as in packing);
    at most `max_batches` batches of `batch_size` rows; a short text gives one shorter row."""
    ids = [tokenizer.eos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    if len(ids) < 2:
        raise LLMLabError("--data: the text encodes to no tokens; give a file with text")
    seq_len = min(seq_len, len(ids) - 1)
    rows = min((len(ids) - 1) // seq_len, batch_size * max_batches)
    byte_lengths = token_byte_lengths(tokenizer)
    batches = []
    for start in range(0, rows, batch_size):
        count = min(batch_size, rows - start)
        run = torch.tensor(ids[start * seq_len : (start + count) * seq_len + 1])
        batches.append(
            PackedBatch(
                input_ids=run[:-1].view(count, seq_len),
                targets=run[1:].view(count, seq_len),
                source_tokens=[count * seq_len],
                num_bytes=sum(byte_lengths[i] for i in run[1:].tolist()),
            )
        )
    return batches


def file_batches(tokenizer, path: str | Path, seq_len: int, batch_size: int, max_batches: int) -> list[PackedBatch]:
    path = Path(path)
    if not path.is_file():
        raise LLMLabError(f"--data: no such file: {path}")
    return text_batches(tokenizer, path.read_text(encoding="utf-8"), seq_len, batch_size, max_batches)


def project_heldout(model_dir: str | Path, tokenizer, max_batches: int) -> list[PackedBatch]:
    """The first `max_batches` held-out batches of the pretraining data of the run that wrote `model_dir`
    (<project>/runs/<run>/<checkpoint>), read with the configuration that run saved."""
    run_dir = Path(model_dir).resolve().parent
    file = run_dir / PROJECT_FILE
    if not file.is_file():
        raise LLMLabError(f"--data: {model_dir} is not a checkpoint of a project's run (no {file}); pass --data FILE")
    data = apply_overrides(read_toml(file), [f"pretrain.eval_batches={max_batches}"])
    held = pretraining_data(project_from_dict(data, run_dir.parent.parent), tokenizer).eval
    if not held:
        raise LLMLabError(f"--data: the project's pretraining data in {file} keeps no held-out part; pass --data FILE")
    return held
