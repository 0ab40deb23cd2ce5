"""`llmlab generate`: streams exactly what `model.generate()` produces, plain or in the chat template."""

import pytest
import torch

from engine.chat_template import ensure_chat_template
from engine.cli import main
from engine.factory import build_model
from engine.project import ModelConfig, Project
from engine.tokenizer import byte_tokenizer


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A tiny model saved twice: with its byte tokenizer as is, and with ChatML added."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(
        Project(model=ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64)), tokenizer
    ).eval()
    model.generation_config.eos_token_id = None  # a random model: never stop early
    model.save_pretrained(root / "plain")
    tokenizer.save_pretrained(root / "plain")
    ensure_chat_template(tokenizer, model)
    model.save_pretrained(root / "chat")
    tokenizer.save_pretrained(root / "chat")
    return root, model, tokenizer


def generate(argv, capsys):
    code = main(["generate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_greedy_completion_is_streamed(model_dirs, capsys):
    root, model, tokenizer = model_dirs
    code, out, _ = generate(
        [root / "plain", "--prompt", "Once upon", "--max-new-tokens", 8, "--temperature", 0], capsys
    )
    assert code == 0
    ids = torch.tensor([tokenizer("Once upon")["input_ids"]])
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert out.rstrip("\n") == tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True).rstrip("\n")


def test_sampling_repeats_with_a_seed(model_dirs, capsys):
    root = model_dirs[0]
    argv = [
        root / "plain",
        "--prompt",
        "abc",
        "--max-new-tokens",
        12,
        "--temperature",
        1.5,
        "--top-k",
        50,
        "--top-p",
        0.95,
        "--seed",
    ]
    outputs = [generate([*argv, seed], capsys)[1] for seed in (1, 1, 2)]
    assert outputs[0] == outputs[1] != outputs[2]


def test_chat_uses_the_template(model_dirs, capsys):
    root, model, tokenizer = model_dirs
    code, out, _ = generate(
        [root / "chat", "--prompt", "hi", "--chat", "--max-new-tokens", 6, "--temperature", 0], capsys
    )
    assert code == 0
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    assert tokenizer.decode(ids[0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        expected = model.generate(
            ids,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        )
    assert out.rstrip("\n") == tokenizer.decode(expected[0, ids.shape[1] :], skip_special_tokens=True).rstrip("\n")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--chat"], "chat: the tokenizer has no chat template"),
        (["--temperature", "-1"], "temperature: must be >= 0"),
        (["--top-p", "0"], "top_p: must be in (0, 1]"),
    ],
)
def test_bad_requests_are_refused(model_dirs, capsys, argv, message):
    code, _, err = generate([model_dirs[0] / "plain", "--prompt", "hi", *argv], capsys)
    assert code == 2 and message in err
