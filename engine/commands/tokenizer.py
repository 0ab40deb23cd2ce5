"""`llmlab tokenizer train PROJECT`: (re)train the project's byte-level BPE into <project>/tokenizer."""

from __future__ import annotations

from engine.commands import add_overrides
from engine.project import load_project
from engine.project.layout import TOKENIZER_DIR
from engine.project.problems import LLMLabError


def register(subparsers) -> None:
    parser = subparsers.add_parser("tokenizer", help="train the project's BPE tokenizer")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = actions.add_parser("train", help="train tokenizer.vocab_size BPE tokens on the project's text")
    train.add_argument("project", help="a project directory or its project.toml")
    add_overrides(train, "tokenizer.vocab_size=8192")
    train.set_defaults(func=run)


def run(args) -> int:
    from engine.project_tokenizer import train_project_bpe  # transformers: only when training

    project = load_project(args.project, args.sets)
    if project.tokenizer.source != "bpe":
        raise LLMLabError(f'tokenizer.source: is {project.tokenizer.source!r}; training applies to "bpe"')
    tokenizer = train_project_bpe(project)
    print(f"trained {len(tokenizer)} tokens into {project.root / TOKENIZER_DIR}")
    return 0
