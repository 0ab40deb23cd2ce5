"""`llmlab tokenizer train`: trains the project's BPE; a project without "bpe" exits 2."""

from __future__ import annotations

from engine.cli import main
from engine.project import new_project
from engine.tokenizer import load_tokenizer


def test_tokenizer_train_writes_the_project_bpe(tmp_path, capsys):
    root = new_project("p", "blank", tmp_path)
    (root / "corpus.txt").write_text("\n\n".join(f"to be or not to be, line {i}" for i in range(300)))
    sets = ["tokenizer.source='bpe'", "tokenizer.vocab_size=300", "tokenizer.train_text=['corpus.txt']"]
    assert main(["tokenizer", "train", str(root), *[a for s in sets for a in ("--set", s)]]) == 0
    assert capsys.readouterr().out == f"trained 300 tokens into {root / 'tokenizer'}\n"
    assert len(load_tokenizer("bpe", root)) == 300


def test_tokenizer_train_refuses_another_source(tmp_path, capsys):
    root = new_project("p", "blank", tmp_path)
    assert main(["tokenizer", "train", str(root), "--set", "tokenizer.source='bytes'"]) == 2
    assert capsys.readouterr().err == "tokenizer.source: is 'bytes'; training applies to \"bpe\"\n"
