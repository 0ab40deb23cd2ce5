"""`llmlab bench data`'s corpora: the jsonl and parquet copies of the Shakespeare text pack alike."""

import itertools

import torch

from engine.bench import loader
from engine.bench.shakespeare import DATA
from engine.tokenizer import byte_tokenizer


def test_the_jsonl_and_parquet_corpora_hold_the_text_and_pack_to_the_same_batches(tmp_path):
    paths = loader.write_corpora(tmp_path)
    tokenizer = byte_tokenizer()
    runs = {
        (kind, streaming): list(itertools.islice(loader.packer(path, streaming, tokenizer), 3))
        for kind, path in paths.items()
        for streaming in (False, True)
    }
    first = runs["jsonl", True][0]
    assert first.input_ids.shape == (loader.BATCH_SIZE, loader.SEQ_LEN)
    assert tokenizer.decode(first.input_ids[0, :40]) in DATA.read_text(encoding="utf-8")
    for (kind, streaming), batches in runs.items():
        reference = runs["jsonl", streaming]
        assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(batches, reference)), (kind, streaming)
