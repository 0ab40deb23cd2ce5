"""`llmlab merge`: an adapter directory becomes a full model directory; bad input exits 2."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from engine.cli import main
from engine.factory import build_model, load_model
from engine.lora import apply_lora
from engine.project import LoraConfig, ModelConfig, Project
from engine.tokenizer import byte_tokenizer


def adapter_dir(tmp_path):
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    project = Project(model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=64, max_seq_len=32))
    build_model(project, tokenizer).save_pretrained(tmp_path / "base")
    peft_model = apply_lora(load_model(tmp_path / "base"), LoraConfig(enabled=True, preset="all"))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # as if trained: the merge must move the weights
    out = tmp_path / "run" / "final"
    peft_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return peft_model.eval(), out


def test_merge_writes_a_sibling_model_directory(tmp_path, capsys):
    peft_model, adapters = adapter_dir(tmp_path)
    assert main(["merge", str(adapters)]) == 0
    merged_dir = tmp_path / "run" / "final-merged"
    line = capsys.readouterr().out
    assert line.startswith(f"merged {adapters} -> {merged_dir} (largest logit difference ")
    assert line.endswith(", tolerance 0.0001)\n")
    ids = torch.arange(40).view(2, 20)
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(input_ids=ids).logits
        expected = peft_model(input_ids=ids).logits
        base = load_model(tmp_path / "base")(input_ids=ids).logits
    assert (merged - expected).abs().max() <= 1e-5
    assert (merged - base).abs().max() > 1e-2
    assert (merged_dir / "tokenizer.json").is_file()


def test_merge_into_a_chosen_directory_and_refusals(tmp_path, capsys):
    _, adapters = adapter_dir(tmp_path)
    assert main(["merge", str(adapters), "--out", str(tmp_path / "chosen")]) == 0
    assert (tmp_path / "chosen" / "config.json").is_file()
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "base")]) == 2
    expected = f"adapter: {tmp_path / 'base'} is not an adapter directory (no adapter_config.json)\n"
    assert capsys.readouterr().err == expected


def contents(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def merge_cli(capsys, adapters, *more):
    capsys.readouterr()  # what building the models printed
    code = main(["merge", str(adapters), *map(str, more)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_merge_never_deletes_what_it_did_not_write(tmp_path, capsys):
    _, adapters = adapter_dir(tmp_path)
    run = adapters.parent
    (run / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    before = contents(tmp_path)
    for extra in ((), ("--overwrite",)):
        assert merge_cli(capsys, adapters, "--out", run, *extra)[2] == (
            f"--out: {run} holds {adapters}, which llmlab merge reads from; choose a folder outside it\n"
        )
        assert merge_cli(capsys, adapters, "--out", adapters, *extra)[2] == (
            f"--out: {adapters} is the folder llmlab merge reads from; choose another folder\n"
        )
        assert merge_cli(capsys, adapters, "--out", tmp_path / "base", *extra)[2] == (
            f"--out: {tmp_path / 'base'} is the folder llmlab merge reads from; choose another folder\n"
        )
        code, _, err = merge_cli(capsys, adapters, "--out", tmp_path / "mine", *extra)
        assert (code, err) == (
            2,
            f"--out: {tmp_path / 'mine'} is not empty and was not written by llmlab merge "
            "(it holds notes.txt); choose an empty or new folder\n",
        )
    assert contents(tmp_path) == before


def test_merge_replaces_an_earlier_merge_only_with_overwrite(tmp_path, capsys, monkeypatch):
    _, adapters = adapter_dir(tmp_path)
    merged = tmp_path / "run" / "final-merged"
    assert merge_cli(capsys, adapters)[0] == 0
    first = contents(merged)
    assert ".llmlab-output.json" in first
    code, _, err = merge_cli(capsys, adapters)
    assert (code, err) == (
        2,
        f"--out: {merged} holds an earlier output of llmlab merge; --overwrite replaces it, or choose a new folder\n",
    )
    assert merge_cli(capsys, adapters, "--overwrite")[0] == 0
    assert contents(merged) == first
    assert main(["export", str(merged), "--format", "llama", "--out", str(tmp_path / "mine"), "--overwrite"]) == 0
    assert merge_cli(capsys, adapters, "--out", tmp_path / "mine", "--overwrite")[1:] == (
        "",
        (
            f"--out: {tmp_path / 'mine'} was written by llmlab export --format llama, not llmlab merge; "
            "choose an empty or new folder\n"
        ),
    )
    monkeypatch.chdir(adapters)  # `llmlab merge .` from inside the adapter folder: its sibling by default
    assert (
        merge_cli(capsys, ".", "--out", ".")[2] == f"--out: . ({adapters}) is the current folder; choose a new folder\n"
    )
    assert merge_cli(capsys, ".", "--overwrite")[0] == 0
    assert contents(merged) == first
