"""No code from a folder ever runs unless the project says `trust_remote_code = true`, and nothing
asks on stdin: a module planted through `auto_map` in each kind of folder the tool loads (the
project's tokenizer/, a tokenizer directory, a model directory, an adapter directory and its
base, a reward model) never runs, even with "y" waiting on stdin. Each load either refuses with
one line or loads the stock classes without the folder's code.
"""

from __future__ import annotations

import io
import json
import sys

import pytest
import torch
import transformers.dynamic_module_utils
from transformers import AutoTokenizer

from engine.cli import main
from engine.factory import build_model, load_adapter, load_model
from engine.lora import apply_lora, merge
from engine.project import LLMLabError, LoraConfig, ModelConfig, Project, load_project
from engine.project_tokenizer import project_tokenizer
from engine.rewards import RewardModel
from engine.tokenizer import byte_tokenizer, load_tokenizer
from tests.tiny_project import make_project

TINY = ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=64)


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file a planted module writes when it is imported; remote code caches stay in tmp_path."""
    monkeypatch.setattr(transformers.dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    return tmp_path / "PLANTED-CODE-RAN"


@pytest.fixture
def stdin_yes(monkeypatch):
    """'y' waiting on stdin, as in `echo y | llmlab ...`; the test checks nobody read it."""
    stdin = io.StringIO("y\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    return stdin


def module_source(marker, classes=()) -> str:
    """A module that writes `marker` on import (and defines `classes`, so a trusting load succeeds)."""
    lines = ["import pathlib", f"pathlib.Path({str(marker)!r}).write_text('ran')"]
    for name, base in classes:
        module, _, cls = base.rpartition(".")
        lines += [f"from {module} import {cls}", f"class {name}({cls}):", "    pass"]
    return "\n".join(lines) + "\n"


def plant_tokenizer(folder, marker, stock_class: bool = False) -> None:
    """auto_map AutoTokenizer → planted.PlantedTokenizer; the class name alone needs the code unless
    `stock_class` keeps the folder's own tokenizer_class beside the auto_map."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoTokenizer": ["planted.PlantedTokenizer", "planted.PlantedTokenizer"]}
    if not stock_class:
        config["tokenizer_class"] = "PlantedTokenizer"
    config_file.write_text(json.dumps(config))
    (folder / "planted.py").write_text(
        module_source(marker, [("PlantedTokenizer", "transformers.PreTrainedTokenizerFast")])
    )


def plant_model_config(folder, marker, auto_class: str, stock_type: bool = False) -> None:
    """config.json's auto_map sends `auto_class` to planted.py; its model_type is unknown unless `stock_type`."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["auto_map"] = {"AutoConfig": "planted.PlantedConfig", auto_class: "planted.PlantedModel"}
    if not stock_type:
        config["model_type"] = "planted"
    config_file.write_text(json.dumps(config))
    (folder / "planted.py").write_text(module_source(marker))


def save_tiny_model(folder):
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(Project(model=TINY), tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def save_adapter(base, folder):
    peft_model = apply_lora(load_model(base), LoraConfig(enabled=True, preset="all"))
    peft_model.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def assert_never_ran(marker, stdin, capsys=None):
    assert not marker.exists(), "code planted in a folder ran"
    assert stdin.tell() == 0, "something read stdin (a trust_remote_code prompt)"
    if capsys is not None:
        captured = capsys.readouterr()
        assert "[y/N]" not in captured.out + captured.err
        return captured


def test_the_plants_run_when_trusted(tmp_path, marker):
    """The control: the same plants do run code when a load says trust_remote_code=True."""
    byte_tokenizer().save_pretrained(tmp_path / "tok")
    plant_tokenizer(tmp_path / "tok", marker)
    AutoTokenizer.from_pretrained(tmp_path / "tok", trust_remote_code=True)
    assert marker.exists()


def test_project_tokenizer_folder_is_refused_by_llmlab_run(tmp_path, marker, stdin_yes, capsys):
    project_dir = make_project(tmp_path / "p", steps=2)
    text = (project_dir / "project.toml").read_text().replace('source = "bytes"', 'source = "bpe"')
    (project_dir / "project.toml").write_text(text)
    byte_tokenizer().save_pretrained(project_dir / "tokenizer")
    plant_tokenizer(project_dir / "tokenizer", marker)
    assert main(["run", str(project_dir), "--stage", "pretrain"]) == 2
    err = assert_never_ran(marker, stdin_yes, capsys).err
    assert err.startswith(f"tokenizer.source: cannot load the project's tokenizer in {project_dir / 'tokenizer'}: ")
    assert "Traceback" not in err


def test_project_tokenizer_with_a_stock_class_loads_without_the_code(tmp_path, marker, stdin_yes):
    project_dir = make_project(tmp_path / "p")
    byte_tokenizer().save_pretrained(project_dir / "tokenizer")
    plant_tokenizer(project_dir / "tokenizer", marker, stock_class=True)
    project = load_project(project_dir)
    project.tokenizer.source = "bpe"
    assert len(project_tokenizer(project)) == len(byte_tokenizer())
    assert_never_ran(marker, stdin_yes)


def test_tokenizer_directory_source_is_refused(tmp_path, marker, stdin_yes):
    byte_tokenizer().save_pretrained(tmp_path / "tok")
    plant_tokenizer(tmp_path / "tok", marker)
    with pytest.raises(LLMLabError, match=r"tokenizer.source: cannot load 'tok' \(a directory or a hub id\): "):
        load_tokenizer("tok", tmp_path)  # also how a stage's init folder's tokenizer loads
    assert_never_ran(marker, stdin_yes)


def test_model_directory_code_never_runs(tmp_path, marker, stdin_yes, capsys):
    """Our model directories carry modeling code (model.py, named by auto_map): replaced by a plant,
    it never runs: the registered class loads instead, in `llmlab generate` too."""
    save_tiny_model(tmp_path / "model")
    (tmp_path / "model" / "model.py").write_text(module_source(marker))
    for name in ("layers.py", "positions.py"):
        (tmp_path / "model" / name).write_text(module_source(marker))
    assert type(load_model(tmp_path / "model")).__module__ == "engine.model"
    code = main(["generate", str(tmp_path / "model"), "--prompt", "x", "--max-new-tokens", "2"])
    assert code == 0
    assert_never_ran(marker, stdin_yes, capsys)


def test_model_directory_of_an_unknown_type_is_refused(tmp_path, marker, stdin_yes, capsys):
    save_tiny_model(tmp_path / "model")
    plant_model_config(tmp_path / "model", marker, "AutoModelForCausalLM")
    with pytest.raises(LLMLabError, match=f"model: cannot load {tmp_path / 'model'}: "):
        load_model(tmp_path / "model")
    assert main(["generate", str(tmp_path / "model"), "--prompt", "x"]) == 2
    assert "Traceback" not in assert_never_ran(marker, stdin_yes, capsys).err


def test_model_directory_tokenizer_is_refused_by_generate(tmp_path, marker, stdin_yes, capsys):
    save_tiny_model(tmp_path / "model")
    plant_tokenizer(tmp_path / "model", marker)
    assert main(["generate", str(tmp_path / "model"), "--prompt", "x"]) == 2
    err = assert_never_ran(marker, stdin_yes, capsys).err
    assert err.startswith(f"model_dir: {tmp_path / 'model'} has no loadable tokenizer files: ")


def test_adapter_directory_is_refused_by_generate_and_merge(tmp_path, marker, stdin_yes, capsys):
    save_tiny_model(tmp_path / "base")
    adapter = save_adapter(tmp_path / "base", tmp_path / "run" / "final")
    plant_tokenizer(adapter, marker)
    assert main(["generate", str(adapter), "--prompt", "x"]) == 2
    expected = f"adapter: cannot load the tokenizer in {adapter}: "
    assert assert_never_ran(marker, stdin_yes, capsys).err.startswith(expected)
    assert main(["merge", str(adapter)]) == 2
    assert assert_never_ran(marker, stdin_yes, capsys).err.startswith(expected)
    assert not (tmp_path / "run" / "final-merged").exists()


def test_adapter_on_a_planted_base_loads_without_the_code(tmp_path, marker, stdin_yes):
    save_tiny_model(tmp_path / "base")
    adapter = save_adapter(tmp_path / "base", tmp_path / "run" / "final")
    (tmp_path / "base" / "model.py").write_text(module_source(marker))
    plant_tokenizer(adapter, marker, stock_class=True)
    load_adapter(adapter)
    merge(adapter)
    assert (tmp_path / "run" / "final-merged" / "config.json").is_file()
    assert_never_ran(marker, stdin_yes)


@pytest.fixture
def reward_dir(tmp_path):
    """A tiny sequence classifier (stock Llama) with a byte tokenizer, saved like a hub repo."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path / "reward"
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_reward_model_folder_is_refused(reward_dir, marker, stdin_yes):
    plant_model_config(reward_dir, marker, "AutoModelForSequenceClassification")
    with pytest.raises(LLMLabError, match="reward_model: cannot load 'reward': "):
        RewardModel("reward", reward_dir.parent, torch.device("cpu"), trust_remote_code=False)
    assert_never_ran(marker, stdin_yes)


def test_reward_model_tokenizer_is_refused(reward_dir, marker, stdin_yes):
    plant_tokenizer(reward_dir, marker)
    with pytest.raises(LLMLabError, match="reward_model: cannot load 'reward': "):
        RewardModel("reward", reward_dir.parent, torch.device("cpu"))
    assert_never_ran(marker, stdin_yes)


def test_reward_model_with_stock_classes_loads_without_the_code(reward_dir, marker, stdin_yes):
    plant_model_config(reward_dir, marker, "AutoModelForSequenceClassification", stock_type=True)
    plant_tokenizer(reward_dir, marker, stock_class=True)
    model = RewardModel("reward", reward_dir.parent, torch.device("cpu"))
    assert model.score(["a"], ["b"]).shape == (1,)
    assert_never_ran(marker, stdin_yes)
