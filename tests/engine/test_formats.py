"""Every accepted row convention → the expected conversation, preference or prompt."""

import pytest

from engine.formats import (
    Preference,
    PromptRow,
    detect_format,
    oasst_conversations,
    parse_hh,
    rows_to_conversations,
    to_conversation,
    to_preference,
    to_prompt,
)
from engine.project.problems import LLMLabError


def m(role, content):
    return {"role": role, "content": content}


@pytest.mark.parametrize(
    ("row", "name", "expected"),
    [
        (
            {
                "messages": [
                    m("system", "Be brief."),
                    m("user", "Hi"),
                    m("assistant", "Hello"),
                    m("user", "2+2?"),
                    m("assistant", "4"),
                ]
            },
            "messages",
            [
                m("system", "Be brief."),
                m("user", "Hi"),
                m("assistant", "Hello"),
                m("user", "2+2?"),
                m("assistant", "4"),
            ],
        ),
        (
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hey"}]},
            "sharegpt",
            [m("user", "Hi"), m("assistant", "Hey")],
        ),
        ({"prompt": "Say A", "completion": "A"}, "prompt_completion", [m("user", "Say A"), m("assistant", "A")]),
        (
            {"prompt": [m("system", "S"), m("user", "Q")], "completion": [m("assistant", "R")]},
            "prompt_completion",
            [m("system", "S"), m("user", "Q"), m("assistant", "R")],
        ),
        (
            {"instruction": "Translate", "input": "chat", "output": "cat"},
            "alpaca",
            [m("user", "Translate\n\nchat"), m("assistant", "cat")],
        ),
        (
            {"instruction": "Name a color", "input": "", "output": "red"},
            "alpaca",
            [m("user", "Name a color"), m("assistant", "red")],
        ),
    ],
)
def test_each_sft_format_becomes_its_conversation(row, name, expected):
    assert detect_format(row.keys()) == name
    assert to_conversation(row) == expected


def test_a_row_of_no_format_names_the_dataset_and_its_columns():
    with pytest.raises(LLMLabError) as error:
        to_conversation({"question": "q", "reply": "r"}, source="sft.datasets[0] (qa.jsonl)")
    assert error.value.lines == [
        "sft.datasets[0] (qa.jsonl): no conversation format matches the columns [question, reply]; "
        "accepted: messages | conversations | message_id + parent_id + role + text (oasst) | "
        "prompt + completion | instruction + output (+ input) "
        "(rename columns with the dataset's `columns` table)"
    ]


def test_a_bad_role_is_refused_with_its_position():
    with pytest.raises(LLMLabError, match=r"messages\[1\]\.role: must be one of system, user, assistant, got 'robot'"):
        to_conversation({"messages": [m("user", "a"), m("robot", "b")]})


def oasst_row(mid, parent, role, text, rank=None, lang="en", deleted=False):
    return {
        "message_id": mid,
        "parent_id": parent,
        "role": role,
        "text": text,
        "rank": rank,
        "lang": lang,
        "deleted": deleted,
    }


def test_oasst_tree_becomes_best_ranked_paths():
    rows = [
        oasst_row("r1", None, "prompter", "Q1"),
        oasst_row("a2", "r1", "assistant", "second best", rank=1),
        oasst_row("a1", "r1", "assistant", "best", rank=0),
        oasst_row("a3", "r1", "assistant", "unranked"),
        oasst_row("p1", "a1", "prompter", "follow-up"),
        oasst_row("b1", "p1", "assistant", "worse follow-up answer", rank=1),
        oasst_row("b0", "p1", "assistant", "follow-up answer", rank=0),
        oasst_row("p2", "a2", "prompter", "other branch"),
        oasst_row("r2", None, "prompter", "Q2", lang="de"),
        oasst_row("c1", "r2", "assistant", "A2", rank=0),
        oasst_row("c0", "r2", "assistant", "deleted", rank=0, deleted=True),
        oasst_row("p3", "c1", "prompter", "dangling question"),
        oasst_row("r3", None, "prompter", "unanswered"),
    ]
    assert detect_format(rows[0].keys()) == "oasst"
    assert oasst_conversations(rows) == [
        [m("user", "Q1"), m("assistant", "best"), m("user", "follow-up"), m("assistant", "follow-up answer")],
        [m("user", "Q2"), m("assistant", "A2")],
    ]
    assert oasst_conversations(rows, lang="de") == [[m("user", "Q2"), m("assistant", "A2")]]
    assert rows_to_conversations(rows) == oasst_conversations(rows)


def test_rows_to_conversations_detects_once_and_converts_each_row():
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    assert rows_to_conversations(rows) == [[m("user", "a"), m("assistant", "b")], [m("user", "c"), m("assistant", "d")]]
    assert rows_to_conversations([]) == []


def test_oasst_rows_alone_are_refused_by_to_conversation():
    with pytest.raises(LLMLabError, match="oasst rows form trees"):
        to_conversation(oasst_row("r1", None, "prompter", "Q"))


def test_explicit_preference_strings_and_messages():
    assert to_preference({"prompt": "Q", "chosen": "good", "rejected": "bad"}) == Preference(
        [m("user", "Q")], [m("assistant", "good")], [m("assistant", "bad")]
    )
    prompt = [m("user", "Q")]
    row = {"prompt": prompt, "chosen": prompt + [m("assistant", "good")], "rejected": prompt + [m("assistant", "bad")]}
    assert detect_format(row, "preference") == "prompt_chosen_rejected"
    assert to_preference(row) == Preference(prompt, [m("assistant", "good")], [m("assistant", "bad")])


def test_hh_rlhf_pairs_split_at_the_shared_prompt():
    shared = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Is water wet?\n\nAssistant:"
    row = {"chosen": shared + " Yes, it is.", "rejected": shared + " Yes and no."}
    assert detect_format(row, "preference") == "chosen_rejected"
    assert to_preference(row) == Preference(
        [m("user", "Hi there"), m("assistant", "Hello!"), m("user", "Is water wet?")],
        [m("assistant", "Yes, it is.")],
        [m("assistant", "Yes and no.")],
    )


def test_implicit_preference_message_lists_split_after_the_last_shared_user_turn():
    prompt = [m("user", "Q"), m("assistant", "A"), m("user", "Q2")]
    row = {
        "chosen": prompt + [m("assistant", "Same start, good")],
        "rejected": prompt + [m("assistant", "Same start, bad")],
    }
    assert to_preference(row) == Preference(
        prompt, [m("assistant", "Same start, good")], [m("assistant", "Same start, bad")]
    )


def test_parse_hh_keeps_a_leading_text_as_user():
    assert parse_hh("Intro\n\nAssistant: ok") == [m("user", "Intro"), m("assistant", "ok")]


def test_prompts_with_and_without_reference():
    assert to_prompt({"prompt": "2+2?", "answer": "4"}) == PromptRow([m("user", "2+2?")], "4")
    system_and_user = [m("system", "S"), m("user", "Q")]
    assert to_prompt({"prompt": system_and_user}) == PromptRow(system_and_user, None)
    assert to_prompt({"messages": [m("user", "Q"), m("assistant", "R")]}) == PromptRow([m("user", "Q")], "R")
    with pytest.raises(LLMLabError, match=r"grpo.datasets\[0\]: no prompt format matches the columns \[text\]"):
        to_prompt({"text": "x"}, source="grpo.datasets[0]")
