"""The project's tokenizer: `tokenizer.source` loaded, a "bpe" one first trained on the project's text.

The BPE learns from `tokenizer.train_text` files, else from the pretraining datasets
(engine.data.training_texts), capped to TRAIN_CHARS characters, and is saved into
<root>/tokenizer, where `load_tokenizer("bpe", root)` finds it.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerFast

from engine.data import training_texts
from engine.project.layout import TOKENIZER_DIR, project_tokenizer_file
from engine.tokenizer import load_tokenizer, train_bpe

TRAIN_CHARS = 20_000_000  # the project text a BPE is trained on is capped to this many characters


def project_tokenizer(project, train_if_missing: bool = True) -> PreTrainedTokenizerFast:
    """The project's tokenizer; a "bpe" one is trained on the project's text first if missing."""
    config = project.tokenizer
    if config.source == "bpe" and train_if_missing and not project_tokenizer_file(project.root).is_file():
        return train_project_bpe(project)
    return load_tokenizer(config.source, project.root, trust_remote_code=config.trust_remote_code)


def train_project_bpe(project) -> PreTrainedTokenizerFast:
    """Train the project's BPE into <root>/tokenizer from its train_text files or pretraining data
    (eos and pad are its own special tokens)."""
    return train_bpe(training_texts(project, TRAIN_CHARS), project.tokenizer.vocab_size, project.root / TOKENIZER_DIR)
