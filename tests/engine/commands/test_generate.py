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
        (["--temperature", "-1"], "--temperature: must be >= 0"),
        (["--temperature", "nan"], "--temperature: must be >= 0 (0 is greedy), a finite number, got nan"),
        (["--top-p", "0"], "--top-p: must be in (0, 1]"),
        (["--top-p", "nan"], "--top-p: must be in (0, 1], got nan"),
        (["--repetition-penalty", "nan"], "--repetition-penalty: must be > 0 (1 is none), a finite number, got nan"),
        (["--repetition-penalty", "inf"], "--repetition-penalty: must be > 0 (1 is none), a finite number, got inf"),
        (["--max-new-tokens", "0"], "--max-new-tokens: must be a whole number, at least 1, got 0"),
        (["--top-k", "-1"], "--top-k: must be a whole number >= 0"),
    ],
)
def test_bad_requests_are_refused(model_dirs, capsys, argv, message):
    code, _, err = generate([model_dirs[0] / "plain", "--prompt", "hi", *argv], capsys)
    assert code == 2 and message in err


def test_bad_settings_are_one_line_each(model_dirs, capsys):
    code, _, err = generate(
        [model_dirs[0] / "plain", "--prompt", "hi", "--temperature", "nan", "--repetition-penalty", "nan"], capsys
    )
    assert code == 2 and "Traceback" not in err
    assert [line.split(":")[0] for line in err.splitlines()] == ["--temperature", "--repetition-penalty"]


def test_max_new_tokens_past_the_context_is_clamped_with_a_note(model_dirs, capsys):
    root, model, tokenizer = model_dirs
    context = model.config.max_position_embeddings
    prompt = "abcd"
    n = len(tokenizer(prompt)["input_ids"])
    code, out, err = generate(
        [root / "plain", "--prompt", prompt, "--max-new-tokens", context * 4, "--temperature", 0], capsys
    )
    assert code == 0
    assert err.splitlines() == [
        f"--max-new-tokens: {context * 4} would pass the model's {context}-token context "
        f"after this {n}-token prompt; generating at most {context - n}"
    ]
    assert len(tokenizer(out.rstrip("\n"))["input_ids"]) <= context - n + 1


def test_a_prompt_that_fills_the_context_is_refused(model_dirs, capsys):
    root, model, _ = model_dirs
    context = model.config.max_position_embeddings
    code, out, err = generate([root / "plain", "--prompt", "x" * (context + 10)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("--prompt: ") and f"the model's context is {context} tokens" in err
    assert len(err.splitlines()) == 1
