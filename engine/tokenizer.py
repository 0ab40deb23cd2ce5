"""Tokenizers: the built-in byte-level one, a byte-level BPE trained for the project, any other.

Every tokenizer here is a transformers fast tokenizer, so it saves beside a model in Hugging
Face format. Ours share one special-token set (SPECIAL_TOKENS): `<|endoftext|>` is bos and eos
(pretraining puts it between documents), `<|pad|>` pads. Chat tokens are added later by
engine.chat_template. Any tokenizer loaded here gets an eos token and a pad token. A project's
own tokenizer (its BPE trained on the project's text) is engine.project_tokenizer's.

No load runs code from a folder or the hub unless it is told `trust_remote_code=True` (the
project's `tokenizer.trust_remote_code`); every `from_pretrained` passes the setting, so
transformers never asks on stdin. A folder whose tokenizer needs its own code is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from engine.project.fileio import atomic_directory
from engine.project.layout import TOKENIZER_DIR, TOKENIZER_FILE
from engine.project.problems import LLMLabError

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (what ByteLevel tokens are made of)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = (b for b in range(256) if b not in chars)
    chars.update({b: chr(256 + n) for n, b in enumerate(extra)})
    return dict(sorted(chars.items()))


def _byte_level(model: models.Model) -> Tokenizer:
    """A tokenizers pipeline over raw UTF-8 bytes: GPT-2's byte-level pre-tokenizer and decoder."""
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Token i is byte i (0-255), then the special tokens: round-trips any UTF-8 text."""
    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    vocab.update({token: 256 + n for n, token in enumerate(SPECIAL_TOKENS)})
    return _wrap(_byte_level(models.BPE(vocab=vocab, merges=[])))


def train_bpe(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of `vocab_size` tokens (specials included), saved into `out_dir`."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise LLMLabError(
            f"tokenizer.vocab_size: must be at least {MIN_VOCAB_SIZE} "
            f"(256 bytes + {len(SPECIAL_TOKENS)} special tokens), got {vocab_size}"
        )
    tokenizer = _byte_level(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = _wrap(tokenizer)
    with atomic_directory(out_dir) as tmp:
        wrapped.save_pretrained(tmp)
    return wrapped


def _with_eos_and_pad(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """Give a loaded tokenizer an eos token (ours, if it has none) and a pad token (= eos)."""
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS_TOKEN})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(source: str, root: str | Path = ".", trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    """ "bytes", "bpe" (the project's trained one), a directory (relative to root) or a hub id."""
    if source == "bytes":
        return byte_tokenizer()
    root = Path(root)
    if source == "bpe":
        return _load_project_bpe(root, trust_remote_code)
    local = root / Path(source).expanduser()
    if not local.is_dir() and source.startswith((".", "/", "~")):
        raise LLMLabError(f"tokenizer.source: no tokenizer directory {local}")
    target = str(local) if local.is_dir() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise LLMLabError(
            f"tokenizer.source: cannot load {source!r} (a directory or a hub id): {_reason(error)}"
        ) from error
    return _with_eos_and_pad(tokenizer)


def _load_project_bpe(root: Path, trust_remote_code: bool = False) -> PreTrainedTokenizerFast:
    path = root / TOKENIZER_DIR
    if not (path / TOKENIZER_FILE).is_file():
        raise LLMLabError(
            f"tokenizer.source: 'bpe' needs a trained tokenizer in {path}; "
            "train it with `llmlab tokenizer train` (or start pretraining)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise LLMLabError(
            f"tokenizer.source: cannot load the project's tokenizer in {path}: {_reason(error)}"
        ) from error
    return _with_eos_and_pad(tokenizer)


def saved_tokenizer(model_dir: str | Path, field: str = "model") -> PreTrainedTokenizerFast:
    """The tokenizer saved in a model or adapter directory, as saved; never code from the folder."""
    try:
        return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise LLMLabError(f"{field}: cannot load the tokenizer in {model_dir}: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    """The first line of a loading error (transformers' messages run on for paragraphs)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def token_byte_lengths(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """UTF-8 bytes each token id stands for (0 for special tokens), for bits per byte.

    Exact for byte-level tokenizers (one character of a ByteLevel token is one byte); for others
    the length of the token decoded on its own, which may miss a leading space.
    """
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    backend = getattr(tokenizer, "backend_tokenizer", None)  # absent on slow (Python) tokenizers
    byte_level = backend is not None and isinstance(backend.decoder, decoders.ByteLevel)
    lengths = []
    for token_id, token in enumerate(tokens):
        if token_id in special or token is None:
            lengths.append(0)
        elif byte_level:
            lengths.append(len(token))
        else:
            lengths.append(len(tokenizer.decode([token_id]).encode("utf-8")))
    return lengths
