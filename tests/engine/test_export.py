"""Llama export: stock transformers loads the directory without remote code and gives our logits."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from engine.cli import main
from engine.export import export
from engine.factory import build_model
from engine.project import ModelConfig, Project
from engine.project.problems import LLMLabError
from engine.tokenizer import byte_tokenizer


def saved_model(path, **fields):
    shape = dict(
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=48,
        max_seq_len=64,
        yarn_factor=4.0,
        yarn_original_max_seq_len=16,
    )
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(Project(model=ModelConfig(**{**shape, **fields})), tokenizer).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


@pytest.mark.parametrize(
    "fields",
    [
        {"positional_encoding": "rope"},
        {"positional_encoding": "yarn"},
        {"positional_encoding": "rope", "bias": True, "tie_embeddings": False, "attention": "mqa"},
    ],
    ids=["rope", "yarn", "rope-bias-untied-mqa"],
)
def test_llama_export_gives_the_same_logits(tmp_path, fields):
    ours = saved_model(tmp_path / "ours", **fields)
    export(tmp_path / "ours", tmp_path / "llama", "llama")
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    assert config["model_type"] == "llama" and "auto_map" not in config
    assert not list((tmp_path / "llama").glob("*.py"))
    llama = AutoModelForCausalLM.from_pretrained(tmp_path / "llama", trust_remote_code=False).eval()
    assert type(llama) is LlamaForCausalLM
    ids = torch.randint(0, 258, (2, 40), generator=torch.Generator().manual_seed(0))  # past yarn's 16
    with torch.no_grad():
        diff = (llama(ids).logits - ours(ids).logits).abs().max().item()
    assert diff <= 1e-5
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "llama")
    assert tokenizer("hi")["input_ids"] == byte_tokenizer()("hi")["input_ids"]


def test_a_model_that_is_not_llama_shaped_is_refused(tmp_path):
    saved_model(tmp_path / "ours", positional_encoding="alibi", normalization="layernorm", activation="gelu")
    with pytest.raises(LLMLabError) as caught:
        export(tmp_path / "ours", tmp_path / "llama", "llama")
    assert caught.value.lines[1:] == [
        "positional_encoding: alibi has no Llama equivalent (needs rope or yarn)",
        "normalization: layernorm has no Llama equivalent (needs rmsnorm)",
        "activation: gelu has no Llama equivalent (needs swiglu)",
    ]
    assert not (tmp_path / "llama").exists()


def test_export_command(tmp_path, capsys):
    saved_model(tmp_path / "ours")
    assert main(["export", str(tmp_path / "ours"), "--format", "llama", "--out", str(tmp_path / "llama")]) == 0
    assert (tmp_path / "llama" / "model.safetensors").is_file()
    saved_model(tmp_path / "sin", positional_encoding="sinusoidal")
    assert main(["export", str(tmp_path / "sin"), "--format", "llama", "--out", str(tmp_path / "x")]) == 2
    assert "positional_encoding: sinusoidal has no Llama equivalent (needs rope or yarn)" in capsys.readouterr().err


def a_run(tmp_path):
    """A run folder as training leaves it: final/ (a model), a step folder, metrics, the project."""
    run = tmp_path / "runs" / "pretrain-1"
    saved_model(run / "final")
    (run / "step-000004").mkdir()
    (run / "step-000004" / "trainer_state.pt").write_bytes(b"state")
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "project.toml").write_text("name = 'p'\n")
    return run


def contents(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def export_cli(capsys, model, out, *more):
    capsys.readouterr()  # what building the models printed
    code = main(["export", str(model), "--format", "llama", "--out", str(out), *more])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_export_into_the_run_folder_is_refused_and_deletes_nothing(tmp_path, capsys):
    run = a_run(tmp_path)
    before = contents(run)
    for extra in ((), ("--overwrite",)):
        code, out, err = export_cli(capsys, run / "final", run, *extra)
        assert (code, out) == (2, "")
        assert (
            err == f"--out: {run} holds {run / 'final'}, which llmlab export --format llama reads from; "
            "choose a folder outside it\n"
        )
    assert contents(run) == before


def test_export_into_a_folder_with_other_files_is_refused(tmp_path, capsys):
    run = a_run(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for extra in ((), ("--overwrite",)):
        code, _, err = export_cli(capsys, run / "final", tmp_path / "mine", *extra)
        assert code == 2
        assert err == (
            f"--out: {tmp_path / 'mine'} is not empty and was not written by llmlab export --format llama "
            "(it holds notes.txt); choose an empty or new folder\n"
        )
    assert contents(tmp_path / "mine") == ["notes.txt"]
    code, _, err = export_cli(capsys, run / "final", run / "final" / "llama")
    assert code == 2 and "is inside" in err and not (run / "final" / "llama").exists()


def test_export_replaces_an_earlier_export_only_with_overwrite(tmp_path, capsys):
    run = a_run(tmp_path)
    out = tmp_path / "llama"
    assert export_cli(capsys, run / "final", out)[:2] == (0, f"wrote {out}\n")
    first = contents(out)
    assert ".llmlab-output.json" in first and "model.safetensors" in first
    code, _, err = export_cli(capsys, run / "final", out)
    assert code == 2
    assert err == (
        f"--out: {out} holds an earlier output of llmlab export --format llama; --overwrite replaces it, "
        "or choose a new folder\n"
    )
    (out / "model.safetensors").write_bytes(b"stale")
    assert export_cli(capsys, run / "final", out, "--overwrite")[:2] == (0, f"wrote {out}\n")
    assert contents(out) == first and (out / "model.safetensors").stat().st_size > 5
    assert not list(tmp_path.glob(".llama.*"))


def test_export_out_dot_is_a_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    run = a_run(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    code, _, err = export_cli(capsys, run / "final", ".")
    assert (code, err) == (2, f"--out: . ({tmp_path / 'empty'}) is the current folder; choose a new folder\n")
    monkeypatch.chdir(run)
    code, _, err = export_cli(capsys, "final", ".")
    assert (code, err) == (2, f"--out: . ({run}) is the current folder; choose a new folder\n")
    assert export_cli(capsys, "final", "../llama")[:2] == (0, f"wrote {tmp_path / 'runs' / 'llama'}\n")
