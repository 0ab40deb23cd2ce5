"""The demo data: deterministic bytes, held-out facts apart from trained ones, standard columns,
one answer format; the demo project file validates and equals its template."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import formats
from engine.cli import main as cli
from engine.data import load_source
from engine.demo_data import (
    DEMO_SEED,
    FILLERS,
    QUESTIONS,
    ROWS,
    SPLITS,
    STATEMENTS,
    answer_in_format,
    answer_start,
    demo_files,
    demo_rows,
    format_answer,
    generate_demo_data,
)
from engine.project import DatasetConfig, load_project, new_project, validate_project
from engine.project.problems import LLMLabError
from engine.rewards import build_rule
from engine.rows import load_items

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "engine" / "project" / "templates" / "demo.toml"


@pytest.fixture(scope="module")
def rows():
    return demo_rows(1337)


def _question_patterns() -> list[tuple[str, re.Pattern]]:
    """Each question template as a regex capturing its subject(s)."""
    patterns = []
    for attribute, templates in QUESTIONS.items():
        for template in templates:
            regex = re.escape(template).replace(r"\{p\}", r"(?P<p>\w+)").replace(r"\{q\}", r"(?P<q>\w+)")
            patterns.append((attribute, re.compile(f"^{regex}$")))
    return patterns


PATTERNS = _question_patterns()


def topic(question: str) -> tuple[str, ...]:
    """What a question asks about, order-free for sums (parsed from the text alone)."""
    for attribute, pattern in PATTERNS:
        match = pattern.match(question)
        if match:
            return (attribute, *sorted((match["p"], match.groupdict().get("q") or "")))
    raise AssertionError(f"not a known question: {question!r}")


def questions(name: str, row: dict) -> list[str]:
    if name == "sft":
        return [m["content"] for m in row["messages"] if m["role"] == "user"]
    return [row["prompt"][-1]["content"]]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = generate_demo_data(tmp_path / "a", seed=7)
    assert cli(["demo-data", "--out", str(tmp_path / "b"), "--seed", "7"]) == 0
    second = demo_files(tmp_path / "b")
    other = generate_demo_data(tmp_path / "c", seed=8)
    assert set(first) == {f"{name}_{split}" for name in ROWS for split in SPLITS}
    for key, path in first.items():
        assert path.read_bytes() == second[key].read_bytes(), key
        assert path.read_bytes() != other[key].read_bytes(), key


def test_sizes(rows):
    for name, (n_train, n_held_out) in ROWS.items():
        assert [len(rows[name][split]) for split in SPLITS] == [n_train, n_held_out], name


@pytest.mark.parametrize("name", ["sft", "dpo", "prompts"])
def test_held_out_questions_ask_about_other_facts(rows, name):
    train = {topic(q) for row in rows[name]["train"] for q in questions(name, row)}
    held_out = {topic(q) for row in rows[name]["validation"] for q in questions(name, row)}
    assert held_out and not train & held_out
    assert {t[0] for t in held_out} >= ({"age", "legs", "sum"} if name == "prompts" else set(QUESTIONS))


def test_pretraining_states_held_out_facts_but_repeats_no_document(rows):
    train_texts = [row["text"] for row in rows["pretrain"]["train"]]
    assert not set(train_texts) & {row["text"] for row in rows["pretrain"]["validation"]}
    corpus = " ".join(train_texts)
    sums = [row for row in rows["prompts"]["validation"] if topic(row["prompt"][-1]["content"])[0] == "sum"]
    for row in sums:  # the knowledge behind a held-out question is in the pretraining text
        a, b = re.findall(r"\d+", row["prompt"][-1]["content"])
        statements = {t.format(p=x, q=y, v=row["answer"]) for t in STATEMENTS["sum"] for x, y in ((a, b), (b, a))}
        assert any(s in corpus for s in statements), row


def test_rows_have_the_standard_columns_of_their_stage(rows):
    for split in SPLITS:
        for row in rows["pretrain"][split]:
            assert set(row) == {"text"} and row["text"]
        for row in rows["sft"][split]:
            assert set(row) == {"messages"}
            conversation = formats.to_conversation(row)
            roles = [m["role"] for m in conversation if m["role"] != "system"]
            assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
            assert all(m["role"] != "system" for m in conversation[1:])
        for row in rows["dpo"][split]:
            assert set(row) == {"prompt", "chosen", "rejected"}
            prompt, chosen, rejected = formats.to_preference(row)
            assert prompt[-1]["role"] == "user" and chosen != rejected
        for row in rows["prompts"][split]:
            assert set(row) == {"prompt", "answer"}
            assert formats.to_prompt(row)[1] == row["answer"] and row["answer"].isdigit()


def test_answers_are_in_the_one_checkable_format(rows):
    replies = [m["content"] for row in rows["sft"]["train"] for m in row["messages"] if m["role"] == "assistant"]
    assert all(answer_start(reply) for reply in replies)
    chatty = [reply for reply in replies if not answer_in_format(reply)]
    assert 0.6 < len(chatty) / len(replies) < 0.8  # most replies end with a filler, a terse reply is the rest
    assert all(reply.endswith(FILLERS) for reply in chatty)
    assert answer_start(" The answer is 12. Hope that helps!") == "12" and answer_start("It is 12.") is None
    chosen = [row["chosen"][0]["content"] for row in rows["dpo"]["train"]]
    rejected = [row["rejected"][0]["content"] for row in rows["dpo"]["train"]]
    assert all(answer_in_format(c) for c in chosen)
    assert 0.2 < sum(map(answer_in_format, rejected)) / len(rejected) < 0.6  # wrong value, or wrong form
    exact_match = build_rule("exact_match")
    for row in rows["prompts"]["validation"][:20]:
        assert exact_match(format_answer(row["answer"]), row["answer"]) == 1.0
        assert exact_match(format_answer(int(row["answer"]) + 1), row["answer"]) == 0.0
    assert not answer_in_format("The answer is 12. The answer is 13.") and not answer_in_format("12")


def test_demo_project_is_the_template_and_validates():
    assert (REPO / "projects" / "demo" / "project.toml").read_bytes() == TEMPLATE.read_bytes()
    for name in ("demo", "tour"):
        assert validate_project(load_project(REPO / "projects" / name)) == []


def test_a_demo_dataset_is_written_on_first_use_and_never_touched(tmp_path):
    root = new_project("mine", "demo", tmp_path)
    assert not (root / "data").exists()
    rows = load_source(DatasetConfig(path="demo:sft/train.jsonl"), root)
    written = root / "data" / "sft" / "train.jsonl"
    assert sorted(p for p in (root / "data").rglob("*") if p.is_file()) == [written]  # only the file named
    expected = generate_demo_data(tmp_path / "fresh", DEMO_SEED)
    assert written.read_bytes() == expected["sft_train"].read_bytes() and len(rows) == ROWS["sft"][0]
    written.write_text('{"messages": [{"role": "user", "content": "mine"}]}\n')
    assert len(load_source(DatasetConfig(path="demo:sft/train.jsonl"), root)) == 1  # never overwritten
    with pytest.raises(LLMLabError, match="'demo:sft/test.jsonl' is not a demo dataset; they are demo:pretrain"):
        load_source(DatasetConfig(path="demo:sft/test.jsonl"), root)


def test_a_plain_path_never_gets_demo_data(tmp_path, capsys):
    """A project naming data/pretrain/train.jsonl (the old demo paths) and lacking it: one line, no data."""
    root = new_project("mine", "demo", tmp_path)
    (root / "project.toml").write_text((root / "project.toml").read_text().replace('"demo:', '"data/'))
    capsys.readouterr()
    assert cli(["run", str(root), "--stage", "pretrain", "--set", "pretrain.steps=1", "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no such file or folder" in error and "data/pretrain/train.jsonl" in error, error
    assert not (root / "data").exists()
    with pytest.raises(LLMLabError, match=r"sft\.datasets\[0\]\.path: no such file or folder: .*data/sft/train"):
        load_items(load_project(root).sft.datasets, root, formats.rows_to_conversations, "sft.datasets")
    assert not (root / "data").exists()


def test_the_demo_works_from_a_fresh_copy_through_every_command(tmp_path, capsys):
    root = new_project("mine", "demo", tmp_path)
    assert cli(["tokenizer", "train", str(root)]) == 0, capsys.readouterr().err
    assert (root / "data" / "pretrain" / "train.jsonl").is_file()
    assert cli(["preview", str(root), "--stage", "sft"]) == 0, capsys.readouterr().err
    assert (root / "data" / "sft" / "train.jsonl").is_file()
    run = ["run", str(root), "--stage", "pretrain", "--device", "cpu"]
    steps = ["pretrain.steps=1", "pretrain.eval_every=1", "pretrain.eval_batches=1", "pretrain.sample_every=0"]
    assert cli(run + [arg for s in steps for arg in ("--set", s)]) == 0, capsys.readouterr().err


def test_the_apps_tools_write_the_demo_data_through_the_same_loader(tmp_path):
    """The Tools' BPE and the app's dataset preview (engine.task_worker) on a fresh copy."""
    from engine import task_worker

    root = new_project("mine", "demo", tmp_path)
    assert task_worker.train_tokenizer(str(root))["vocab_size"] > 256
    assert (root / "data" / "pretrain" / "train.jsonl").is_file() and not (root / "data" / "dpo").exists()
    examples = task_worker.preview(str(root), "dpo", n=1)["examples"]
    assert examples and (root / "data" / "dpo" / "train.jsonl").is_file()
