"""Chat templates: the tokenizer's own, or ChatML added with its special tokens; conversations
rendered into token ids with the labels SFT trains on.

`ensure_chat_template` gives a template-less tokenizer ChatML (`<|im_start|>role\\n…<|im_end|>\\n`),
gives the new tokens embedding rows equal to the mean of the old ones (growing the matrices if needed) and makes
`generate()` stop at the end of a turn. `conversation_spans` renders a conversation prefix by
prefix, so it works with any template: an assistant turn is exactly what rendering it adds after
the generation prompt, up to and including its end-of-turn token (trained, so the model learns
to stop); the rest is context. Tokenizers travel with checkpoints (save_pretrained writes the
template), so `apply_chat_template` works on every saved model directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.project.problems import LLMLabError
from engine.project.sizing import VOCAB_MULTIPLE

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Tokens that end a turn in common templates (ChatML, Llama 3, Gemma, Phi-3); the eos otherwise.
END_OF_TURN_TOKENS = (IM_END, "<|eot_id|>", "<end_of_turn>", "<|end|>")
IGNORE = -100  # the label of a token the loss skips


def ensure_chat_template(tokenizer, model: torch.nn.Module | None = None) -> bool:
    """Give `tokenizer` ChatML when it has no template; fit `model` to it. True if ChatML was added."""
    old_size = len(tokenizer)
    added = not tokenizer.chat_template
    if added:
        tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
        tokenizer.chat_template = CHATML_TEMPLATE
    if model is not None:
        if added:
            init_new_embeddings(model, old_size, len(tokenizer))
        set_generation_eos(model, tokenizer)
    return added


@torch.no_grad()
def init_new_embeddings(model: torch.nn.Module, old_size: int, new_size: int) -> None:
    """Rows old_size..new_size of the embeddings (and an untied head) = the mean of the rows before.

    The matrices grow (to a multiple of VOCAB_MULTIPLE) only when they lack rows: a padded
    vocabulary may already hold untrained rows for the new ids, which get the mean all the same.
    """
    if model.get_input_embeddings().weight.shape[0] < new_size:
        model.resize_token_embeddings(new_size, pad_to_multiple_of=VOCAB_MULTIPLE, mean_resizing=False)
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            module.weight[old_size:new_size] = module.weight[:old_size].mean(dim=0)
            if getattr(module, "bias", None) is not None:
                module.bias[old_size:new_size] = module.bias[:old_size].mean()


def end_of_turn_ids(tokenizer) -> list[int]:
    """The ids of the tokens that end a turn: the template's own markers, else the eos token."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[token] for token in END_OF_TURN_TOKENS if token in vocab]
    return ids or [tokenizer.eos_token_id]


def set_generation_eos(model: torch.nn.Module, tokenizer) -> None:
    """Make the generation config stop at the eos token and at every end-of-turn token."""
    config = model.generation_config
    current = config.eos_token_id
    current = [] if current is None else [current] if isinstance(current, int) else list(current)
    wanted = [tokenizer.eos_token_id, *end_of_turn_ids(tokenizer)]
    config.eos_token_id = list(dict.fromkeys([*current, *wanted]))
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id


# ---------------------------------------------------------------------------------------------
# conversations → spans → token ids and labels


def _render(tokenizer, messages: Sequence[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=generation_prompt)


def _turn_end(tokenizer, turn: str, content: str) -> int:
    """Where a rendered assistant turn's trained part ends: after its first end-of-turn token."""
    start = max(turn.find(content), 0) + len(content)
    markers = tokenizer.convert_ids_to_tokens(end_of_turn_ids(tokenizer))
    ends = [turn.find(marker, start) + len(marker) for marker in markers if turn.find(marker, start) >= 0]
    return min(ends) if ends else len(turn)


def conversation_spans(
    tokenizer, messages: Sequence[dict], assistant_only: bool = True, trained_from: int = 0
) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, trained) spans, in order.

    Trained: each assistant turn at index >= `trained_from`, from after its generation prompt to
    its end-of-turn token included; everything when `assistant_only` is false. The template must
    render a conversation's prefixes as prefixes of its rendering (every common template does).
    """
    full = _render(tokenizer, messages)
    if not assistant_only:
        return [(full, True)]
    spans, pos = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i < trained_from:
            continue
        before, after = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[: i + 1])
        if not (after.startswith(before) and full.startswith(after) and len(before) >= pos):
            raise LLMLabError(
                "chat template: rendering a conversation turn by turn must only append text; "
                "this template rewrites earlier turns, so assistant tokens cannot be located"
            )
        end = len(before) + _turn_end(tokenizer, after[len(before) :], message["content"])
        spans += [(full[pos : len(before)], False), (full[len(before) : end], True)]
        pos = end
    spans.append((full[pos:], False))
    return [(text, trained) for text, trained in spans if text]


@dataclass
class Encoded:
    """One conversation as the model sees it: ids, labels (IGNORE where untrained), truncated?"""

    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode_spans(tokenizer, spans: Sequence[tuple[str, bool]], max_len: int | None = None) -> Encoded:
    """Tokenize each span on its own (boundaries fall where generation starts) and label it."""
    input_ids, labels = [], []
    for text, trained in spans:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if trained else [IGNORE] * len(ids)
    truncated = max_len is not None and len(input_ids) > max_len
    if truncated:
        input_ids, labels = input_ids[:max_len], labels[:max_len]
    return Encoded(input_ids, labels, truncated)


def encode_conversation(
    tokenizer, messages: Sequence[dict], max_len: int | None = None, assistant_only: bool = True, trained_from: int = 0
) -> Encoded:
    """A conversation → token ids and labels for the loss (see conversation_spans)."""
    return encode_spans(tokenizer, conversation_spans(tokenizer, messages, assistant_only, trained_from), max_len)


def encode_prompt(tokenizer, messages: Sequence[dict]) -> list[int]:
    """The ids that ask the model for the next assistant turn (generation prompt added)."""
    return tokenizer(_render(tokenizer, messages, True), add_special_tokens=False)["input_ids"]
