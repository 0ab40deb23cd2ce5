"""`llmlab preview PROJECT --stage sft`: the first examples as the model will see them.

`preview_examples` is the core, returning plain data (the app shows the same thing): for each
example the detected dataset format and the rendered text as (text, trained) spans, cut where
the stage's seq_len cuts it. SFT marks the trained assistant tokens; DPO shows the chosen and
the rejected reply after the shared prompt; PPO / GRPO show the prompt and its reference answer.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass

from engine.commands import add_overrides
from engine.project import STAGES, load_project

PREVIEW_ROWS = 2000  # rows read from each dataset (enough for a few oasst trees)
MARKS = {"plain": ("[[", "]]"), "tty": ("\033[4m", "\033[24m")}  # around trained text


@dataclass(frozen=True)
class Example:
    """One example as the model sees it: (text, trained) spans, and where it came from."""

    source: str
    format: str
    spans: tuple[tuple[str, bool], ...]
    truncated: bool
    label: str = ""  # "chosen" / "rejected" for DPO pairs
    note: str = ""  # a prompt's reference answer


def register(subparsers) -> None:
    parser = subparsers.add_parser("preview", help="show a stage's first examples with the trained tokens marked")
    parser.add_argument("project", help="a project directory or its project.toml")
    parser.add_argument("--stage", default="sft", choices=STAGES[1:], help="the stage whose datasets to show")
    parser.add_argument("-n", "--examples", type=int, default=3, help="examples per dataset")
    add_overrides(parser, "sft.seq_len=128")
    parser.set_defaults(func=run)


def run(args) -> int:
    project = load_project(args.project, args.sets)
    mark = MARKS["tty" if sys.stdout.isatty() else "plain"]
    for example in preview_examples(project, args.stage, args.examples):
        print("\n".join(describe(example, mark)) + "\n")
    return 0


def describe(example: Example, mark: tuple[str, str] = MARKS["plain"]) -> list[str]:
    """Printable lines: a header naming the source and format, then the marked text."""
    label = f", {example.label}" if example.label else ""
    cut = ", truncated at seq_len" if example.truncated else ""
    text = "".join(f"{mark[0]}{t}{mark[1]}" if trained else t for t, trained in example.spans)
    lines = [f"── {example.source} (format: {example.format}{label}{cut})", text]
    return lines + ([f"reference: {example.note}"] if example.note else [])


def preview_examples(project, stage: str, n: int = 3) -> list[Example]:
    """The first `n` examples (DPO: pairs) of each of the stage's datasets, rendered and marked."""
    from engine.chat_template import ensure_chat_template
    from engine.data import load_source

    config = project.stage(stage)
    tokenizer = _stage_tokenizer(project, config, stage)
    ensure_chat_template(tokenizer)
    examples = []
    for i, ds in enumerate(config.datasets):
        rows = list(itertools.islice(load_source(ds, project.root, field=f"{stage}.datasets[{i}]"), PREVIEW_ROWS))
        examples += EXAMPLES[stage](tokenizer, rows, ds.path, config, n)
    return examples


def _stage_tokenizer(project, config, stage: str):
    """The tokenizer the stage will train with: its init model's, else the project's own."""
    from engine.project.problems import LLMLabError
    from engine.project.runs import resolve_init
    from engine.project_tokenizer import project_tokenizer
    from engine.tokenizer import load_tokenizer

    try:
        return load_tokenizer(str(resolve_init(project, config.init, f"{stage}.init")))
    except LLMLabError:
        return project_tokenizer(project, train_if_missing=False)


def _cut(tokenizer, spans, seq_len: int) -> tuple[tuple[tuple[str, bool], ...], bool]:
    """The spans as the first seq_len tokens leave them, and whether anything was cut."""
    kept, budget = [], seq_len
    for text, trained in spans:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if budget > 0:
            kept.append((text if len(ids) <= budget else tokenizer.decode(ids[:budget]), trained))
        budget -= len(ids)
    return tuple(kept), budget < 0


def _format(rows, kind: str, source: str) -> str:
    from engine.formats import detect_format

    return detect_format(rows[0].keys() if rows else (), kind, source)


def _conversations(tokenizer, rows, source, config, n: int) -> list[Example]:
    from engine.chat_template import conversation_spans
    from engine.formats import rows_to_conversations

    fmt = _format(rows, "conversation", source)
    return [
        Example(source, fmt, *_cut(tokenizer, conversation_spans(tokenizer, c, config.assistant_only), config.seq_len))
        for c in rows_to_conversations(rows, source)[:n]
    ]


def _preferences(tokenizer, rows, source, config, n: int) -> list[Example]:
    from engine.chat_template import conversation_spans
    from engine.formats import to_preference

    fmt, examples = _format(rows, "preference", source), []
    for pair in (to_preference(row, fmt, source) for row in rows[:n]):
        for label, reply in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            spans = conversation_spans(tokenizer, pair.prompt + reply, trained_from=len(pair.prompt))
            examples.append(Example(source, fmt, *_cut(tokenizer, spans, config.seq_len), label=label))
    return examples


def _prompts(tokenizer, rows, source, config, n: int) -> list[Example]:
    from engine.formats import to_prompt

    fmt, examples = _format(rows, "prompt", source), []
    for prompt in (to_prompt(row, fmt, source) for row in rows[:n]):
        text = tokenizer.apply_chat_template(prompt.prompt, tokenize=False, add_generation_prompt=True)
        spans, truncated = _cut(tokenizer, [(text, False)], config.seq_len)
        examples.append(Example(source, fmt, spans, truncated, note=prompt.reference or ""))
    return examples


EXAMPLES = {"sft": _conversations, "dpo": _preferences, "ppo": _prompts, "grpo": _prompts}
