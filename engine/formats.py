"""Dataset rows of every accepted column convention → plain conversations, preferences, prompts.

SFT rows become a conversation (a list of {role, content} with roles system / user / assistant):
`messages`, ShareGPT `conversations`, `prompt` + `completion`, alpaca `instruction` / `input` /
`output`, and OpenAssistant (oasst1) message trees, which span many rows and become one
conversation per root along the best-ranked path. DPO rows become a `Preference`, RL rows a
`PromptRow`. Pure Python (no torch), so the app can show the same previews the engine trains on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from engine.project.problems import LLMLabError

Message = dict[str, str]
Conversation = list[Message]

ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {
    "system": "system",
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
}
REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth")
OASST_FORMAT = "oasst"


class Preference(NamedTuple):
    """A DPO pair: the shared prompt, then the chosen and the rejected assistant turns."""

    prompt: Conversation
    chosen: Conversation
    rejected: Conversation


class PromptRow(NamedTuple):
    """An RL prompt and its reference answer for rule rewards (None when the row has none)."""

    prompt: Conversation
    reference: str | None


@dataclass(frozen=True)
class Format:
    """A column convention: the columns that identify it and how one row converts."""

    name: str
    columns: tuple[str, ...]
    convert: Callable[[Mapping[str, Any]], Any] | None  # None: a multi-row format (oasst)
    describe: str


# ---------------------------------------------------------------------------------------------
# messages


def _message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def normalize_messages(messages: Any, where: str = "messages") -> Conversation:
    """A message list ({role, content} or ShareGPT {from, value}) with canonical roles."""
    if isinstance(messages, str):
        return [_message("user", messages)]
    if not isinstance(messages, Sequence) or not messages:
        raise LLMLabError(f"{where}: expected a non-empty list of messages, got {messages!r}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise LLMLabError(f"{where}[{i}]: expected a {{role, content}} table, got {message!r}")
        role = message.get("role", message.get("from"))
        content = message.get("content", message.get("value"))
        if role not in ROLE_ALIASES:
            raise LLMLabError(f"{where}[{i}].role: must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise LLMLabError(f"{where}[{i}].content: expected a string, got {content!r}")
        out.append(_message(ROLE_ALIASES[role], content))
    return out


def _as_turns(value: Any, role: str, where: str) -> Conversation:
    """A string is one turn of `role`; a list is taken as messages."""
    if isinstance(value, str):
        return [_message(role, value)]
    return normalize_messages(value, where)


# ---------------------------------------------------------------------------------------------
# SFT rows → conversations


def _from_messages(row: Mapping[str, Any]) -> Conversation:
    return normalize_messages(row["messages"])


def _from_sharegpt(row: Mapping[str, Any]) -> Conversation:
    return normalize_messages(row["conversations"], "conversations")


def _from_prompt_completion(row: Mapping[str, Any]) -> Conversation:
    return _as_turns(row["prompt"], "user", "prompt") + _as_turns(row["completion"], "assistant", "completion")


def _from_alpaca(row: Mapping[str, Any]) -> Conversation:
    instruction, extra = row["instruction"], row.get("input") or ""
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    return [_message("user", prompt), _message("assistant", row["output"])]


SFT_FORMATS: dict[str, Format] = {
    "messages": Format("messages", ("messages",), _from_messages, "messages"),
    "sharegpt": Format("sharegpt", ("conversations",), _from_sharegpt, "conversations"),
    OASST_FORMAT: Format(
        OASST_FORMAT, ("message_id", "parent_id", "role", "text"), None, "message_id + parent_id + role + text (oasst)"
    ),
    "prompt_completion": Format(
        "prompt_completion", ("prompt", "completion"), _from_prompt_completion, "prompt + completion"
    ),
    "alpaca": Format("alpaca", ("instruction", "output"), _from_alpaca, "instruction + output (+ input)"),
}


# ---------------------------------------------------------------------------------------------
# DPO rows → preferences


def _common_prefix(a: Sequence, b: Sequence) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


HH_HUMAN, HH_ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def parse_hh(text: str) -> Conversation:
    """Anthropic/hh-rlhf text ("\\n\\nHuman: …\\n\\nAssistant: …") → messages (empty turns kept)."""
    turns, role, pos = [], None, 0
    markers = {HH_HUMAN: "user", HH_ASSISTANT: "assistant"}
    while True:
        found = [(text.find(m, pos), m) for m in markers if text.find(m, pos) >= 0]
        end, marker = min(found) if found else (len(text), None)
        if role is not None:
            turns.append(_message(role, text[pos:end].strip()))
        elif text[:end].strip():
            turns.append(_message("user", text[:end].strip()))
        if marker is None:
            return turns
        role, pos = markers[marker], end + len(marker)


def _split_hh(chosen: str, rejected: str) -> Preference:
    """Split two texts at their shared prefix, backed off to the last "Assistant:" marker in it."""
    shared = chosen[: _common_prefix(chosen, rejected)]
    cut = shared.rfind(HH_ASSISTANT)
    if cut >= 0:
        cut += len(HH_ASSISTANT)
        prompt = parse_hh(chosen[:cut])[:-1]  # drop the empty assistant turn the marker opens
        return Preference(
            prompt, [_message("assistant", chosen[cut:].strip())], [_message("assistant", rejected[cut:].strip())]
        )
    if not shared.strip():
        raise LLMLabError("chosen, rejected: share no prompt; give a `prompt` column")
    return Preference(
        [_message("user", shared.strip())],
        [_message("assistant", chosen[len(shared) :].strip())],
        [_message("assistant", rejected[len(shared) :].strip())],
    )


def _from_explicit_preference(row: Mapping[str, Any]) -> Preference:
    prompt = _as_turns(row["prompt"], "user", "prompt")
    chosen = _as_turns(row["chosen"], "assistant", "chosen")
    rejected = _as_turns(row["rejected"], "assistant", "rejected")
    # UltraFeedback-style rows repeat the prompt inside chosen / rejected: keep only the replies.
    for side in (chosen, rejected):
        if side[: len(prompt)] == prompt and len(side) > len(prompt):
            del side[: len(prompt)]
    return Preference(prompt, chosen, rejected)


def _from_implicit_preference(row: Mapping[str, Any]) -> Preference:
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        return _split_hh(chosen, rejected)
    chosen, rejected = normalize_messages(chosen, "chosen"), normalize_messages(rejected, "rejected")
    n = _common_prefix(chosen, rejected)
    while n > 0 and chosen[n - 1]["role"] == "assistant":
        n -= 1  # the replies start after the last shared user turn
    if n == 0:
        raise LLMLabError("chosen, rejected: share no prompt turns; give a `prompt` column")
    return Preference(chosen[:n], chosen[n:], rejected[n:])


PREFERENCE_FORMATS: dict[str, Format] = {
    "prompt_chosen_rejected": Format(
        "prompt_chosen_rejected",
        ("prompt", "chosen", "rejected"),
        _from_explicit_preference,
        "prompt + chosen + rejected",
    ),
    "chosen_rejected": Format(
        "chosen_rejected",
        ("chosen", "rejected"),
        _from_implicit_preference,
        "chosen + rejected sharing a prompt (hh-rlhf)",
    ),
}


# ---------------------------------------------------------------------------------------------
# RL rows → prompts


def _reference(row: Mapping[str, Any]) -> str | None:
    for column in REFERENCE_COLUMNS:
        if row.get(column) is not None:
            return str(row[column])
    return None


def _from_prompt(row: Mapping[str, Any]) -> PromptRow:
    return PromptRow(_as_turns(row["prompt"], "user", "prompt"), _reference(row))


def _from_prompt_messages(row: Mapping[str, Any]) -> PromptRow:
    """A conversation is a prompt up to its last user turn; a final assistant turn is the reference."""
    messages = normalize_messages(row["messages"])
    reference = _reference(row)
    if messages[-1]["role"] == "assistant":
        reference = reference if reference is not None else messages[-1]["content"]
        messages = messages[:-1]
    return PromptRow(messages, reference)


PROMPT_FORMATS: dict[str, Format] = {
    "prompt": Format("prompt", ("prompt",), _from_prompt, "prompt (+ reference / answer)"),
    "messages": Format("messages", ("messages",), _from_prompt_messages, "messages"),
}

FORMATS_BY_KIND = {"conversation": SFT_FORMATS, "preference": PREFERENCE_FORMATS, "prompt": PROMPT_FORMATS}


# ---------------------------------------------------------------------------------------------
# detection and the public conversions


def detect_format(columns: Iterable[str], kind: str = "conversation", source: str = "dataset") -> str:
    """The name of the first `kind` format whose columns are all present; LLMLabError if none."""
    present = set(columns)
    formats = FORMATS_BY_KIND[kind]
    for fmt in formats.values():
        if present.issuperset(fmt.columns):
            return fmt.name
    accepted = " | ".join(fmt.describe for fmt in formats.values())
    raise LLMLabError(
        f"{source}: no {kind} format matches the columns [{', '.join(sorted(present))}]; "
        f"accepted: {accepted} (rename columns with the dataset's `columns` table)"
    )


def _convert(row: Mapping[str, Any], kind: str, fmt: str | None, source: str) -> Any:
    name = fmt or detect_format(row.keys(), kind, source)
    convert = FORMATS_BY_KIND[kind][name].convert
    if convert is None:
        raise LLMLabError(f"{source}: {name} rows form trees; convert them with oasst_conversations(rows)")
    try:
        return convert(row)
    except LLMLabError as error:
        raise LLMLabError([f"{source}: {line}" for line in error.lines]) from error


def to_conversation(row: Mapping[str, Any], fmt: str | None = None, source: str = "dataset") -> Conversation:
    """One SFT row → [{role, content}, ...] (the format detected from its columns unless given)."""
    return _convert(row, "conversation", fmt, source)


def to_preference(row: Mapping[str, Any], fmt: str | None = None, source: str = "dataset") -> Preference:
    """One DPO row → Preference(prompt messages, chosen turns, rejected turns)."""
    return _convert(row, "preference", fmt, source)


def to_prompt(row: Mapping[str, Any], fmt: str | None = None, source: str = "dataset") -> PromptRow:
    """One PPO / GRPO row → PromptRow(prompt messages, reference answer or None)."""
    return _convert(row, "prompt", fmt, source)


def rows_to_conversations(rows: Sequence[Mapping[str, Any]], source: str = "dataset") -> list[Conversation]:
    """A dataset's rows → conversations: row by row, or as message trees for oasst rows."""
    if not rows:
        return []
    fmt = detect_format(rows[0].keys(), "conversation", source)
    if fmt == OASST_FORMAT:
        return oasst_conversations(rows)
    return [to_conversation(row, fmt, source) for row in rows]


# ---------------------------------------------------------------------------------------------
# OpenAssistant trees


def _rank(row: Mapping[str, Any]) -> float:
    rank = row.get("rank")
    return float("inf") if rank is None else rank


def oasst_conversations(rows: Iterable[Mapping[str, Any]], lang: str | None = None) -> list[Conversation]:
    """oasst1 message rows → one conversation per root prompt, along the best-ranked replies.

    At each level the reply of lowest `rank` (0 is best; unranked replies last, ties in row
    order) is followed until a message has no replies; a path ending on a prompter message
    loses that message so each conversation ends with the assistant. Deleted messages and,
    with `lang`, roots in other languages are skipped.
    """
    children: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    roots = []
    for row in rows:
        if row.get("deleted"):
            continue
        if row.get("parent_id") is None:
            if lang is None or row.get("lang") == lang:
                roots.append(row)
        else:
            children[row["parent_id"]].append(row)
    conversations = []
    for root in roots:
        path, node = [root], root
        while children.get(node["message_id"]):
            node = min(children[node["message_id"]], key=_rank)
            path.append(node)
        if path[-1]["role"] == "prompter":
            path.pop()
        if len(path) >= 2:
            conversations.append([_message(ROLE_ALIASES[m["role"]], m["text"]) for m in path])
    return conversations
