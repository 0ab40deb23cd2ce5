"""Pretraining data: sources of every local kind, held-out splits, weighted mixing, packing, resume."""

import io
import json
import re
from collections import Counter

import datasets
import huggingface_hub.constants
import pytest
import torch

from engine.data import (
    CHUNK_DOCS,
    TEXT,
    Mixture,
    load_source,
    pretraining_data,
    split_heldout,
    token_mixture,
)
from engine.packing import PackedBatches
from engine.project import DatasetConfig, Project, StageConfig
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer

DOCS = [f"document {i}: {'héllo wörld ' * (i % 7)}end" for i in range(50)]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def texts(dataset):
    return [row[TEXT] for row in dataset]


def stream_of(batches):
    """The token stream a run of batches covers: the first input, then every target."""
    return [batches[0].input_ids[0, 0].item()] + [t for b in batches for t in b.targets.flatten().tolist()]


# --- sources ------------------------------------------------------------------------------------


def test_load_source_reads_jsonl_csv_parquet_txt_and_folders(tmp_path):
    rows = [{"text": t, "n": i} for i, t in enumerate(DOCS[:5])]
    write_jsonl(tmp_path / "a.jsonl", rows)
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "a.csv")
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "a.txt").write_text("first paragraph\nstill first\n\nsecond paragraph\n")
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder" / "1.jsonl", rows[:2])
    write_jsonl(tmp_path / "folder" / "2.jsonl", rows[2:])
    for name in ("a.jsonl", "a.csv", "a.parquet", "folder"):
        assert load_source(DatasetConfig(path=name), tmp_path)["text"] == DOCS[:5], name
    assert load_source(DatasetConfig(path="a.txt"), tmp_path)["text"] == [
        "first paragraph\nstill first",
        "second paragraph\n",
    ]


def test_load_source_renames_columns_and_streams(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"body": t} for t in DOCS[:3]])
    config = DatasetConfig(path="a.jsonl", columns={"body": "story"}, streaming=True)
    source = load_source(config, tmp_path)
    assert isinstance(source, datasets.IterableDataset)
    assert [row["story"] for row in source] == DOCS[:3]


def test_load_source_errors_name_the_field(tmp_path):
    with pytest.raises(LLMLabError) as error:
        load_source(DatasetConfig(path="missing.jsonl"), tmp_path, field="pretrain.datasets[0]")
    assert error.value.lines == [f"pretrain.datasets[0].path: no such file or folder: {tmp_path / 'missing.jsonl'}"]
    (tmp_path / "mixed").mkdir()
    write_jsonl(tmp_path / "mixed" / "a.jsonl", [{"text": "x"}])
    (tmp_path / "mixed" / "b.txt").write_text("y")
    with pytest.raises(LLMLabError, match=r"pretrain.datasets\[1\].path: .* must hold files of one kind"):
        load_source(DatasetConfig(path="mixed"), tmp_path, field="pretrain.datasets[1]")
    write_jsonl(tmp_path / "a.jsonl", [{"body": "x"}])
    with pytest.raises(LLMLabError) as error:
        split_heldout(DatasetConfig(path="a.jsonl"), tmp_path, field="pretrain.datasets[2]")
    assert error.value.lines == ["pretrain.datasets[2].text_field: no column 'text'; the columns are ['body']"]


def test_a_malformed_file_names_the_field_the_file_and_the_parser_reason(tmp_path):
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(LLMLabError) as error:
        load_source(DatasetConfig(path="broken.jsonl"), tmp_path, field="sft.datasets[0]")
    [line] = error.value.lines
    assert line.startswith("sft.datasets[0].path: cannot load 'broken.jsonl': JSON parse error")


def test_a_hub_id_goes_to_the_hub_and_a_failure_names_the_field(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network in tests
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(LLMLabError) as error:
        load_source(DatasetConfig(path="nobody/nothing", name="small"), field="pretrain.datasets[0]")
    [line] = error.value.lines
    assert line.startswith("pretrain.datasets[0].path: cannot load 'nobody/nothing': ")


# --- held-out splits ----------------------------------------------------------------------------


def test_heldout_fraction_is_the_last_documents_and_disjoint(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"content": t} for t in DOCS])
    train, heldout = split_heldout(DatasetConfig(path="a.jsonl", text_field="content", eval_fraction=0.1), tmp_path)
    assert texts(train) == DOCS[:45] and texts(heldout) == DOCS[45:]


def test_streaming_heldout_is_every_kth_document(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in DOCS])
    train, heldout = split_heldout(DatasetConfig(path="a.jsonl", eval_fraction=0.1, streaming=True), tmp_path)
    held, kept = iter(heldout), iter(train)
    side_by_side = [(next(held)[TEXT], [next(kept)[TEXT] for _ in range(9)]) for _ in range(5)]
    assert [h for h, _ in side_by_side] == DOCS[9::10]
    assert [t for _, ts in side_by_side for t in ts] == [t for i, t in enumerate(DOCS) if i % 10 != 9]


def test_eval_split_of_a_local_source_is_a_file(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"text": t} for t in DOCS[:40]])
    write_jsonl(tmp_path / "valid.jsonl", [{"text": t} for t in DOCS[40:]])
    train, heldout = split_heldout(DatasetConfig(path="train.jsonl", eval_split="valid.jsonl"), tmp_path)
    assert texts(train) == DOCS[:40] and texts(heldout) == DOCS[40:]
    with pytest.raises(LLMLabError) as error:
        split_heldout(DatasetConfig(path="train.jsonl", eval_split="nope.jsonl"), tmp_path, field="d")
    assert error.value.lines == [f"d.eval_split: no such file or folder: {tmp_path / 'nope.jsonl'}"]


def test_a_fraction_that_leaves_nothing_to_train_is_refused(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "only one"}])
    with pytest.raises(LLMLabError, match=r"^d.eval_fraction: 0.5 of 1 documents leaves none to train on"):
        split_heldout(DatasetConfig(path="a.jsonl", eval_fraction=0.5), tmp_path, field="d")


# --- mixing -------------------------------------------------------------------------------------


def numbered(name, n=100):
    return datasets.Dataset.from_dict({TEXT: [f"{name}{i}" for i in range(n)]})


def test_a_mixture_follows_relative_weights_and_drops_zero_weights():
    mixture = Mixture([numbered("a"), numbered("b"), numbered("c")], [2, 1, 0], seed=0)
    draws = Counter(source for (source, _), _ in zip(mixture, range(6000)))
    assert draws[2] == 0
    assert abs(draws[0] / 6000 - 2 / 3) < 0.02 and abs(draws[1] / 6000 - 1 / 3) < 0.02


def test_a_mixture_reshuffles_each_epoch_and_is_deterministic():
    take = lambda seed: [text for (_, text), _ in zip(Mixture([numbered("a")], [1], seed), range(300))]
    first = take(seed=1)
    assert first == take(seed=1) and first != take(seed=2)
    epochs = [first[:100], first[100:200], first[200:]]
    assert all(sorted(e) == sorted(f"a{i}" for i in range(100)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_a_mixture_records_the_source_of_each_document():
    mixture = Mixture([numbered("a"), numbered("b")], [1, 1], seed=3)
    pairs = [pair for pair, _ in zip(mixture, range(500))]
    assert all(text.startswith("ab"[source]) for source, text in pairs)


def test_a_single_pass_ends_when_the_first_source_runs_out():
    mixture = Mixture([numbered("a", 10), numbered("b", 1000)], [1, 1], seed=0, single_pass=True)
    drawn = [source for source, _ in mixture]
    assert drawn.count(0) == 10 and len(drawn) < 40


# --- packing ------------------------------------------------------------------------------------


def expected_stream(sources, weights, seed, n_docs, tokenizer):
    """Token stream of the same mixture, tokenized one document at a time, EOS after each."""
    stream, owner = [], []
    for (source, text), _ in zip(Mixture(sources, weights, seed), range(n_docs)):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        stream += ids
        owner += [source] * len(ids)
    return stream, owner


def test_packing_loses_no_token_and_puts_eos_between_documents():
    tokenizer = byte_tokenizer()
    sources = [datasets.Dataset.from_dict({TEXT: DOCS[:30]}), datasets.Dataset.from_dict({TEXT: DOCS[30:]})]
    packer = PackedBatches(token_mixture(sources, [2, 1], tokenizer, seed=5), tokenizer, seq_len=16, batch_size=3)
    batches = [next(packer) for _ in range(200)]  # ~10k tokens: several epochs of both sources
    got = stream_of(batches)
    expected, owner = expected_stream(sources, [2, 1], 5, 6 * CHUNK_DOCS, tokenizer)
    assert got == expected[: len(got)]
    assert all(b.input_ids.shape == b.targets.shape == (3, 16) for b in batches)
    assert torch.equal(batches[0].input_ids[0, 1:], batches[0].targets[0, :-1])
    assert torch.equal(batches[0].input_ids[1, 0], batches[0].targets[0, -1])  # rows overlap by one token
    counts = Counter(owner[1 : len(got)])
    assert packer.source_token_counts == [counts[0], counts[1]]
    assert [sum(b.source_tokens) for b in batches] == [48] * 200
    eos = tokenizer.eos_token_id
    assert all(b.num_bytes == int((b.targets != eos).sum()) for b in batches)  # byte-level: 1 byte a token


def test_state_dict_resume_gives_identical_batches(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"text": t} for t in DOCS])
    streaming = lambda: load_source(DatasetConfig(path="s.jsonl", streaming=True), tmp_path)
    sources = lambda: [datasets.Dataset.from_dict({TEXT: DOCS}), streaming()]
    make = lambda: PackedBatches(token_mixture(sources(), [1, 3], byte_tokenizer(), seed=7), byte_tokenizer(), 8, 4)
    packer = make()
    for skip in (0, 1, 40, 50):  # saved at batches 0, 61, 161, 271; the streaming source wraps often
        for _ in range(skip):
            next(packer)
        buffer = io.BytesIO()
        torch.save(packer.state_dict(), buffer)  # the trainer keeps it in trainer_state.pt
        resumed = make()
        resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
        following, again = [next(packer) for _ in range(60)], [next(resumed) for _ in range(60)]
        assert all(
            torch.equal(a.input_ids, b.input_ids) and torch.equal(a.targets, b.targets)
            for a, b in zip(following, again)
        )
        assert resumed.source_token_counts == packer.source_token_counts


def test_ranks_split_the_global_batch():
    make = lambda rank, world, batch: PackedBatches(
        token_mixture([numbered("doc", 500)], [1], byte_tokenizer(), seed=0), byte_tokenizer(), 8, batch, rank, world
    )
    single, rank0, rank1 = make(0, 1, 4), make(0, 2, 2), make(1, 2, 2)
    for _ in range(5):
        whole, a, b = next(single), next(rank0), next(rank1)
        assert torch.equal(whole.input_ids, torch.cat([a.input_ids, b.input_ids]))
        assert torch.equal(whole.targets, torch.cat([a.targets, b.targets]))


def test_pretraining_data_builds_train_and_fixed_eval_batches(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in DOCS])
    (tmp_path / "b.txt").write_text("\n\n".join(DOCS))
    project = Project(
        root=tmp_path,
        seed=3,
        pretrain=StageConfig(
            seq_len=8,
            batch_size=2,
            eval_batches=4,
            datasets=[
                DatasetConfig(path="a.jsonl", weight=3.0, eval_fraction=0.2),
                DatasetConfig(path="unused.jsonl", weight=0.0),
                DatasetConfig(path="b.txt", weight=1.0, eval_fraction=0.2),
            ],
        ),
    )
    data = pretraining_data(project, byte_tokenizer())
    assert data.names == ["a.jsonl", "b.txt"] and data.weights == [0.75, 0.25]
    assert len(data.eval) == 4 and data.eval[0].input_ids.shape == (2, 8)
    train_text = "".join(byte_tokenizer().decode(b.input_ids.flatten()) for b in (next(data.train) for _ in range(300)))
    eval_text = "".join(byte_tokenizer().decode(b.input_ids.flatten()) for b in data.eval)
    eval_docs = {int(n) for n in re.findall(r"document (\d+):", eval_text)}
    train_docs = {int(n) for n in re.findall(r"document (\d+):", train_text)}
    assert eval_docs and eval_docs <= set(range(40, 50)) and train_docs == set(range(40))
    again = pretraining_data(project, byte_tokenizer())
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(data.eval, again.eval))


# --- bad data: one line naming the field, the file and the row -----------------------------------


@pytest.mark.parametrize("content", ["", "\n  \n"])
@pytest.mark.parametrize("as_eval", [False, True])
def test_an_empty_file_is_named_not_a_stop_iteration(tmp_path, content, as_eval):
    write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in DOCS[:5]])
    (tmp_path / "empty.jsonl").write_text(content)
    ds = DatasetConfig(path="good.jsonl", eval_split="empty.jsonl") if as_eval else DatasetConfig(path="empty.jsonl")
    with pytest.raises(LLMLabError, match=r"datasets\.(eval_split|path): .*empty\.jsonl is empty") as caught:
        split_heldout(ds, tmp_path)
    assert "\n" not in str(caught.value)


def test_an_empty_sft_file_is_named(tmp_path):
    from engine.formats import rows_to_conversations
    from engine.rows import load_items

    (tmp_path / "sft.jsonl").write_text("")
    with pytest.raises(LLMLabError, match=r"sft\.datasets\[0\]\.path: .*sft\.jsonl is empty"):
        load_items([DatasetConfig(path="sft.jsonl")], tmp_path, rows_to_conversations, "sft.datasets")


@pytest.mark.parametrize("value", [None, 5])
@pytest.mark.parametrize("streaming", [False, True])
def test_a_text_that_is_not_a_string_names_the_file_and_row(tmp_path, value, streaming):
    write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"text": "also fine"}, {"text": value}])
    with pytest.raises(LLMLabError, match=rf"datasets\.path: bad\.jsonl row 3: the text is {value}"):
        train, _ = split_heldout(DatasetConfig(path="bad.jsonl", eval_fraction=0.0, streaming=streaming), tmp_path)
        list(token_mixture([train], [1.0], byte_tokenizer(), seed=0, single_pass=True))


def test_a_folder_with_one_bad_file_names_the_file(tmp_path):
    (tmp_path / "folder").mkdir()
    write_jsonl(tmp_path / "folder" / "a.jsonl", [{"text": "fine"}])
    (tmp_path / "folder" / "b.jsonl").write_text('{"text": "broken"\n')
    write_jsonl(tmp_path / "folder" / "c.jsonl", [{"text": "fine"}])
    with pytest.raises(LLMLabError, match=r"cannot load '.*folder/b\.jsonl': .*JSON"):
        load_source(DatasetConfig(path="folder"), tmp_path)
