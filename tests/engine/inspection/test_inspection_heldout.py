"""Held-out batches: a text cut into overlapping rows, or the very batches the model's run evaluated on."""

import shutil

import pytest
import torch

from engine.data import pretraining_data
from engine.inspection.heldout import file_batches, project_heldout, text_batches
from engine.project import load_project
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer
from tests.tiny_project import make_project


def test_text_rows_overlap_by_one_and_count_bytes():
    tokenizer = byte_tokenizer()
    batches = text_batches(tokenizer, "abcdefghij", seq_len=3, batch_size=2, max_batches=5)
    assert [b.input_ids.shape for b in batches] == [(2, 3), (1, 3)]  # 11 tokens with EOS: 3 rows of 3
    ids = [tokenizer.eos_token_id, *b"abcdefgh"]
    assert torch.cat([b.input_ids.flatten() for b in batches]).tolist() == ids
    assert torch.cat([b.targets.flatten() for b in batches]).tolist() == list(b"abcdefghi")
    assert [b.num_bytes for b in batches] == [6, 3]
    assert len(text_batches(tokenizer, "abcdefghij", 3, 2, max_batches=1)) == 1
    short = text_batches(tokenizer, "ab", seq_len=8, batch_size=2, max_batches=1)
    assert short[0].targets.tolist() == [list(b"ab")]


def test_bad_text_sources_are_named(tmp_path):
    tokenizer = byte_tokenizer()
    with pytest.raises(LLMLabError, match="--data: no such file"):
        file_batches(tokenizer, tmp_path / "none.txt", 8, 2, 1)
    with pytest.raises(LLMLabError, match="--data: the text encodes to no tokens"):
        text_batches(tokenizer, "", 8, 2, 1)


def test_the_runs_own_eval_batches(tmp_path):
    root = make_project(tmp_path / "p")
    checkpoint = root / "runs" / "pretrain-20260101-000000" / "final"
    checkpoint.mkdir(parents=True)
    shutil.copy(root / "project.toml", checkpoint.parent / "project.toml")
    tokenizer = byte_tokenizer()
    got = project_heldout(checkpoint, tokenizer, max_batches=1)
    expected = pretraining_data(load_project(root), tokenizer).eval[:1]
    assert len(got) == 1 and torch.equal(got[0].input_ids, expected[0].input_ids)
    with pytest.raises(LLMLabError, match="--data: .* is not a checkpoint of a project's run"):
        project_heldout(tmp_path, tokenizer, 1)
