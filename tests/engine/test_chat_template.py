"""Chat templates: ChatML added and saved, embeddings grown by the mean, assistant-only labels."""

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from engine.chat_template import (
    CHATML_TEMPLATE,
    IGNORE,
    IM_END,
    conversation_spans,
    encode_conversation,
    encode_prompt,
    end_of_turn_ids,
    ensure_chat_template,
)
from engine.factory import build_model
from engine.project import ModelConfig, Project
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.fixture
def tokenizer():
    tok = byte_tokenizer()
    assert ensure_chat_template(tok)
    return tok


def tiny_llama(vocab_size, tied):
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def test_chatml_is_added_once_and_saved_with_the_tokenizer(tokenizer, tmp_path):
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert not ensure_chat_template(tokenizer)
    size = len(tokenizer)
    assert size == 256 + 2 + 2
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = reloaded.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert len(reloaded) == size
    assert end_of_turn_ids(reloaded) == [reloaded.convert_tokens_to_ids(IM_END)]
    assert encode_prompt(reloaded, CONVERSATION[:2]) == encode_prompt(tokenizer, CONVERSATION[:2])


@pytest.mark.parametrize("tied", [True, False])
def test_new_embedding_rows_are_the_mean_of_the_old_and_generation_stops_at_end_of_turn(tied):
    tok = byte_tokenizer()
    model = tiny_llama(len(tok), tied)
    model.generation_config.eos_token_id = tok.eos_token_id
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    ensure_chat_template(tok, model)
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in.shape[0] == new_out.shape[0] == model.config.vocab_size == 320  # 260 padded to 64s
    torch.testing.assert_close(new_in[:258], old_in)
    torch.testing.assert_close(new_in[258:260], old_in.mean(0).expand(2, -1))
    torch.testing.assert_close(new_out[258:260], old_out.mean(0).expand(2, -1))
    assert (new_in.data_ptr() == new_out.data_ptr()) == tied
    assert model.generation_config.eos_token_id == [tok.eos_token_id, tok.convert_tokens_to_ids(IM_END)]


def test_padded_rows_are_reused_for_new_tokens_and_set_to_the_mean():
    tok = byte_tokenizer()
    project = Project(model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=64))
    model = build_model(project, tok)
    old = model.get_input_embeddings().weight.detach().clone()
    assert old.shape[0] == 320
    ensure_chat_template(tok, model)
    new = model.get_input_embeddings().weight
    assert new.shape[0] == 320
    torch.testing.assert_close(new[258:260], old[:258].mean(0).expand(2, -1))
    torch.testing.assert_close(new[260:], old[260:])


def test_assistant_turns_and_their_end_of_turn_are_the_trained_spans(tokenizer):
    assert conversation_spans(tokenizer, CONVERSATION) == [
        ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", False),
        ("Hello<|im_end|>", True),
        ("\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", False),
        ("4<|im_end|>", True),
        ("\n", False),
    ]


def test_labels_token_by_token(tokenizer):
    encoded = encode_conversation(tokenizer, CONVERSATION)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    assert (
        encoded.input_ids
        == tokenizer(tokenizer.apply_chat_template(CONVERSATION, tokenize=False), add_special_tokens=False)["input_ids"]
    )
    trained = [i for i, label in enumerate(encoded.labels) if label != IGNORE]
    # "Hello" + <|im_end|> and "4" + <|im_end|>: one byte token per character.
    assert encoded.trained_tokens == 8
    assert [encoded.input_ids[i] for i in trained] == [*b"Hello", im_end, *b"4", im_end]
    assert all(encoded.labels[i] == encoded.input_ids[i] for i in trained)
    ids = encoded.input_ids
    hello = next(i for i in range(len(ids)) if ids[i : i + 5] == [*b"Hello"])
    assert trained[:6] == list(range(hello, hello + 6))
    assert encoded.labels[-1] == IGNORE and not encoded.truncated


def test_trained_from_skips_earlier_assistant_turns(tokenizer):
    spans = conversation_spans(tokenizer, CONVERSATION, trained_from=3)
    assert [text for text, trained in spans if trained] == ["4<|im_end|>"]


def test_all_tokens_option_and_truncation(tokenizer):
    everything = encode_conversation(tokenizer, CONVERSATION, assistant_only=False)
    assert everything.labels == everything.input_ids
    short = encode_conversation(tokenizer, CONVERSATION, max_len=50)
    assert short.truncated and len(short.input_ids) == len(short.labels) == 50
    assert short.input_ids == everything.input_ids[:50]


def test_a_tokenizer_s_own_template_is_kept_and_masked_the_same_way():
    tok = byte_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|header|>", "<|eot_id|>"]})
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|header|>{{ m['role'] }}\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|header|>assistant\n\n{% endif %}"
    )
    template = tok.chat_template
    assert not ensure_chat_template(tok)
    assert tok.chat_template == template
    spans = conversation_spans(tok, CONVERSATION[1:3])
    assert spans == [
        ("<|endoftext|><|header|>user\n\nHi<|eot_id|><|header|>assistant\n\n", False),
        ("Hello<|eot_id|>", True),
    ]


def test_a_template_that_rewrites_earlier_turns_is_refused():
    tok = byte_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}|{{ messages|length }}{% endfor %}"
    with pytest.raises(LLMLabError, match="rewrites earlier turns"):
        conversation_spans(tok, CONVERSATION[1:3])
