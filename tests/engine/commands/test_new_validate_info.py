"""`llmlab new`, `validate` and `info` through engine.cli.main: exit codes and the lines printed."""

from __future__ import annotations

import copy
import json
import random

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.project import Project, project_to_dict
from engine.project.run_lock import RunLock
from engine.project.runs import create_run_dir


def project_dir(tmp_path, data: dict | None = None, text: str | None = None):
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    (root / "project.toml").write_text(text if text is not None else tomli_w.dumps(data or {}))
    return root


def test_new_then_validate_then_info(tmp_path, capsys):
    assert main(["new", "demo_x", "--dir", str(tmp_path)]) == 0
    root = tmp_path / "demo_x"
    assert f"created {root}" in capsys.readouterr().out
    assert main(["validate", str(root)]) == 0
    assert capsys.readouterr().out == f"ok: {root / 'project.toml'} (project 'demo_x')\n"
    assert main(["info", str(root / "project.toml")]) == 0
    out = capsys.readouterr().out
    assert "parameters" in out and "FLOPs/token" in out and "runs         none yet" in out
    assert "bf16" in out and "fp32" in out and "optimizer" in out and "activations" in out


def test_new_refuses_to_overwrite(tmp_path, capsys):
    assert main(["new", "a", "--dir", str(tmp_path)]) == 0
    assert main(["new", "a", "--dir", str(tmp_path)]) == 2
    assert "already exists; a project is never overwritten" in capsys.readouterr().err
    assert main(["new", "../a", "--dir", str(tmp_path)]) == 2
    assert "name: must be a plain directory name" in capsys.readouterr().err


def test_validate_prints_one_line_per_problem_and_exits_2(tmp_path, capsys):
    root = project_dir(
        tmp_path, {"model": {"d_model": 100, "attention": "mqa", "n_kv_heads": 2}, "pretrain": {"lr": 0}}
    )
    assert main(["validate", str(root)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [  # what each named field means, from the schema (descriptions.py)
        "pretrain.lr is the peak learning rate, reached after the warmup — a number, greater than 0",
        "model.d_model is the width of each token's vector (features) — a whole number, at least 1",
        "model.n_kv_heads is key/value heads for gqa (n_heads must be divisible by it); mqa: 1, mha: n_heads"
        " — a whole number, at least 1",
    ]
    assert captured.err.splitlines() == [
        "pretrain.lr: must be greater than 0, got 0.0",
        "model.d_model: must be divisible by model.n_heads (8), got 100",
        'model.n_kv_heads: attention "mqa" means n_kv_heads = 1, got 2 (set it to 1, or leave it out)',
    ]


def test_validate_with_overrides(tmp_path, capsys):
    root = project_dir(tmp_path, {})
    assert main(["validate", str(root), "--set", "pretrain.steps=0"]) == 2
    assert capsys.readouterr().err == "pretrain.steps: must be at least 1, got 0\n"
    assert (
        main(
            [
                "validate",
                str(root),
                "--set",
                "pretrain.steps=20",
                "--set",
                "model.attention=mqa",
                "--set",
                "model.n_kv_heads=1",
            ]
        )
        == 0
    )
    assert main(["validate", str(root), "--set", "pretrain.nope=1"]) == 2
    assert capsys.readouterr().err.startswith("--set pretrain.nope: unknown setting (known in pretrain: steps")


def test_an_old_key_is_named_with_its_new_name(tmp_path, capsys):
    root = project_dir(
        tmp_path, {"ppo": {"ppo_epochs": 2, "cliprange": 0.1}, "grpo": {"beta": 0.04, "epsilon_high": 0.28}}
    )
    assert main(["validate", str(root)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ppo.ppo_epochs: renamed to ppo.epochs",
        "ppo.cliprange: renamed to ppo.clip_range",
        "grpo.beta: renamed to grpo.kl_coef",
        "grpo.epsilon_high: renamed to grpo.clip_range_high",
    ]
    assert main(["validate", str(root), "--set", "grpo.epsilon=0.3"]) == 2
    assert capsys.readouterr().err.splitlines()[0] == "--set grpo.epsilon: renamed to grpo.clip_range"


def test_validate_syntax_error(tmp_path, capsys):
    root = project_dir(tmp_path, text="[model\n")
    assert main(["validate", str(root)]) == 2
    assert capsys.readouterr().err.startswith(f"{root / 'project.toml'}: line 1, column 7: ")


def test_info_lists_runs_with_their_state(tmp_path, capsys):
    root = project_dir(tmp_path, {"tokenizer": {"source": "bytes"}})
    run = create_run_dir(Project(root=root), "pretrain")
    events = [
        {"type": "started", "time": 1.0, "total_steps": 50},
        {"type": "metrics", "time": 2.0, "step": 10, "loss": 2.5},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    with RunLock(run):
        assert main(["info", str(root), "--stage", "sft"]) == 0
    out = capsys.readouterr().out
    assert "memory to train sft (batch 16 x 256 tokens, adamw)" in out
    assert f"{run.name}" in out and "running" in out and "step 10/50  loss 2.5000" in out
    assert main(["info", str(root)]) == 0  # nobody holds the lock any more, and the run never ended
    assert "died" in capsys.readouterr().out


def test_info_sizes_memory_per_device_for_the_run(tmp_path, capsys):
    root = project_dir(tmp_path, {"tokenizer": {"source": "bytes"}})

    def table(*args) -> tuple[str, dict[str, str]]:
        assert main(["info", str(root), *args]) == 0
        lines = capsys.readouterr().out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("memory to train"))
        return lines[start + 1].strip(), {line.split()[0]: line for line in lines[start + 3 : start + 9]}

    options, ddp = table()
    assert options == "no activation checkpointing, chunked loss, ddp on 1 device"
    options, fsdp = table("--world-size", "4", "--parallel", "fsdp", "--set", "pretrain.activation_checkpointing=true")
    assert options == "activation checkpointing, chunked loss, fsdp on 4 devices"
    assert fsdp["optimizer"] != ddp["optimizer"] and fsdp["activations"] != ddp["activations"]
    assert main(["info", str(root), "--world-size", "0"]) != 0
    assert "--world-size: must be at least 1" in capsys.readouterr().err


# --- property test: random damage never produces a traceback ---------------------------------

JUNK = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.just({}),
    st.just({"x": 1}),
    st.sampled_from(["rope", "gqa", "muon", "custom", "regex", "bytes", "sft", "none", ""]),
)


def _paths(node, prefix=()):
    """Every (path, value) inside a nested dict / list."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def _mutate(data: dict, rng: random.Random, junk: list) -> dict:
    for value in map(copy.deepcopy, junk):  # st.just's dicts are shared: a copy, never the same dict twice
        path = rng.choice([p for p, _ in _paths(data) if p])  # anew: a mutation may remove a table
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, (dict, list)):
            continue
        action = rng.randrange(3)
        if action == 0:  # a wrong or out-of-range value
            parent[path[-1]] = value
        elif action == 1 and isinstance(parent, dict):  # a missing key or table
            parent.pop(path[-1], None)
        elif isinstance(parent, dict):  # an extra key
            parent[f"extra_{rng.randrange(5)}"] = value
    return data


BASE = project_to_dict(Project())
BASE["pretrain"]["datasets"] = [{"path": "a.txt", "weight": 1.0}, {"path": "b", "columns": {"q": "prompt"}}]
BASE["grpo"]["reward_rules"] = ["exact_match", {"name": "regex", "pattern": "\\d+", "weight": 0.5}]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), junk=st.lists(JUNK, min_size=1, max_size=4))
def test_random_damage_gives_exit_0_or_2_never_a_traceback(tmp_path, capsys, seed, junk):
    data = _mutate(json.loads(json.dumps(BASE)), random.Random(seed), junk)
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # NaN-free TOML can't hold every junk value; skip those
        return
    root = project_dir(tmp_path, text=text)
    code = main(["validate", str(root)])
    captured = capsys.readouterr()
    assert code in (0, 2)
    lines = (captured.out if code == 0 else captured.err).splitlines()
    assert lines and "Traceback" not in captured.err
    if code == 2:
        assert all(": " in line for line in lines), lines
