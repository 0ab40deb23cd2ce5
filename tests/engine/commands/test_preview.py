"""`llmlab preview`: examples as the model sees them, trained text marked, format named."""

from __future__ import annotations

import json

import tomli_w

from engine.cli import main
from engine.commands.preview import Example, preview_examples
from engine.project import load_project


def project(tmp_path, stage: str, rows: list[dict], **fields) -> str:
    root = tmp_path / "p"
    root.mkdir()
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = {"tokenizer": {"source": "bytes"}, stage: {"datasets": [{"path": "data.jsonl"}], **fields}}
    (root / "project.toml").write_text(tomli_w.dumps(data))
    return str(root)


def test_sft_preview_marks_the_replies_and_names_the_format(tmp_path, capsys):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}] * 3
    root = project(tmp_path, "sft", rows)
    assert main(["preview", root, "--stage", "sft", "-n", "1"]) == 0
    assert capsys.readouterr().out == (
        "── data.jsonl (format: messages)\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[Hello<|im_end|>]]\n\n\n"
    )
    assert main(["preview", root, "-n", "1", "--set", "sft.seq_len=23"]) == 0
    assert capsys.readouterr().out == (
        "── data.jsonl (format: messages, truncated at seq_len)\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[He]]\n\n"
    )


def test_alpaca_rows_with_all_tokens_trained(tmp_path):
    root = project(tmp_path, "sft", [{"instruction": "Add", "input": "1 2", "output": "3"}], assistant_only=False)
    (example,) = preview_examples(load_project(root), "sft")
    assert example == Example(
        "data.jsonl",
        "alpaca",
        (("<|im_start|>user\nAdd\n\n1 2<|im_end|>\n<|im_start|>assistant\n3<|im_end|>\n", True),),
        False,
    )


def test_dpo_pairs_and_rl_prompts(tmp_path):
    root = project(tmp_path, "dpo", [{"prompt": "Q", "chosen": "good", "rejected": "bad"}])
    chosen, rejected = preview_examples(load_project(root), "dpo")
    prompt = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"
    assert (chosen.label, chosen.format, chosen.spans) == (
        "chosen",
        "prompt_chosen_rejected",
        ((prompt, False), ("good<|im_end|>", True), ("\n", False)),
    )
    assert rejected.label == "rejected" and rejected.spans[1] == ("bad<|im_end|>", True)
    (tmp_path / "p").rename(tmp_path / "dpo")
    root = project(tmp_path, "grpo", [{"prompt": "2+2?", "answer": "4"}])
    (example,) = preview_examples(load_project(root), "grpo")
    prompt = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert example == Example("data.jsonl", "prompt", ((prompt, False),), False, note="4")
