"""Tokenizers: byte-level round trips, BPE training to size, saving and loading like a hub id."""

import huggingface_hub.constants
import pytest

from engine.project import DatasetConfig, Project, StageConfig, TokenizerConfig
from engine.project.problems import LLMLabError
from engine.project_tokenizer import project_tokenizer
from engine.tokenizer import (
    EOS_TOKEN,
    MIN_VOCAB_SIZE,
    PAD_TOKEN,
    byte_tokenizer,
    load_tokenizer,
    token_byte_lengths,
    train_bpe,
)

TEXT = "Héllo, wörld! 日本語のテキスト 🙂\n\ttabs  and  spaces\r\n" + "naïve café " * 3
CORPUS = [
    f"The quick brown fox {i} jumps over the lazy dog. Pack my box with five dozen liquor jugs." for i in range(200)
]


def test_byte_tokenizer_ids_are_the_utf8_bytes_and_round_trip():
    tokenizer = byte_tokenizer()
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert ids == list(TEXT.encode("utf-8"))
    assert tokenizer.decode(ids) == TEXT
    assert len(tokenizer) == MIN_VOCAB_SIZE == 258
    assert tokenizer.convert_ids_to_tokens([256, 257]) == [EOS_TOKEN, PAD_TOKEN]
    assert (tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id) == (256, 256, 257)


def test_byte_tokenizer_saves_and_loads_in_hf_format(tmp_path):
    byte_tokenizer().save_pretrained(tmp_path / "bytes")
    loaded = load_tokenizer(str(tmp_path / "bytes"))
    assert loaded(TEXT, add_special_tokens=False)["input_ids"] == list(TEXT.encode("utf-8"))
    assert loaded.eos_token == EOS_TOKEN and loaded.pad_token == PAD_TOKEN


def test_train_bpe_reaches_the_vocab_size_round_trips_and_loads_like_a_hub_id(tmp_path):
    trained = train_bpe(CORPUS + [TEXT], vocab_size=300, out_dir=tmp_path / "tok")
    assert len(trained) == 300
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    ids = trained(TEXT, add_special_tokens=False)["input_ids"]
    assert trained.decode(ids) == TEXT
    assert len(trained(CORPUS[0], add_special_tokens=False)["input_ids"]) < len(CORPUS[0])  # merges learned
    loaded = load_tokenizer("tok", root=tmp_path)  # a relative directory, through AutoTokenizer
    assert loaded(TEXT, add_special_tokens=False)["input_ids"] == ids
    assert (loaded.eos_token, loaded.pad_token, len(loaded)) == (EOS_TOKEN, PAD_TOKEN, 300)


def test_train_bpe_refuses_a_vocab_smaller_than_bytes_and_specials(tmp_path):
    with pytest.raises(LLMLabError) as error:
        train_bpe(CORPUS, vocab_size=257, out_dir=tmp_path / "tok")
    assert error.value.lines == ["tokenizer.vocab_size: must be at least 258 (256 bytes + 2 special tokens), got 257"]
    assert not (tmp_path / "tok").exists()


def test_a_tokenizer_without_pad_gets_pad_equal_to_eos(tmp_path):
    tokenizer = byte_tokenizer()
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path / "nopad")
    loaded = load_tokenizer("nopad", tmp_path)
    assert loaded.pad_token == loaded.eos_token == EOS_TOKEN


def test_an_unknown_hub_id_names_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network in tests
    with pytest.raises(LLMLabError) as error:
        load_tokenizer("no-such-org/no-such-tokenizer-here", tmp_path)
    [line] = error.value.lines
    assert line.startswith(
        "tokenizer.source: cannot load 'no-such-org/no-such-tokenizer-here' (a directory or a hub id): "
    )


def test_a_missing_local_directory_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(LLMLabError) as error:
        load_tokenizer("./missing", tmp_path)
    assert error.value.lines == [f"tokenizer.source: no tokenizer directory {tmp_path / 'missing'}"]


def test_bpe_source_without_a_trained_tokenizer_says_how_to_train(tmp_path):
    with pytest.raises(LLMLabError, match="tokenizer.source: 'bpe' needs a trained tokenizer"):
        load_tokenizer("bpe", tmp_path)


def test_project_tokenizer_trains_bpe_from_pretraining_text_once(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n\n".join(CORPUS))
    project = Project(
        root=tmp_path,
        tokenizer=TokenizerConfig(source="bpe", vocab_size=290),
        pretrain=StageConfig(datasets=[DatasetConfig(path="corpus.txt")]),
    )
    trained = project_tokenizer(project)
    assert len(trained) == 290 and (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    loaded = project_tokenizer(project, train_if_missing=False)
    assert loaded(TEXT)["input_ids"] == trained(TEXT)["input_ids"]


def test_project_tokenizer_trains_on_train_text_files(tmp_path):
    (tmp_path / "words.jsonl").write_text("\n".join(f'{{"text": "{line}"}}' for line in CORPUS))
    project = Project(
        root=tmp_path, tokenizer=TokenizerConfig(source="bpe", vocab_size=270, train_text=["words.jsonl"])
    )
    assert len(project_tokenizer(project)) == 270


def test_token_byte_lengths_sum_to_the_text_bytes(tmp_path):
    trained = train_bpe(CORPUS + [TEXT], vocab_size=320, out_dir=tmp_path / "tok")
    lengths = token_byte_lengths(trained)
    ids = trained(TEXT + EOS_TOKEN, add_special_tokens=False)["input_ids"]
    assert ids[-1] == trained.eos_token_id
    assert sum(lengths[i] for i in ids) == len(TEXT.encode("utf-8"))
    assert token_byte_lengths(byte_tokenizer()) == [1] * 256 + [0, 0]
