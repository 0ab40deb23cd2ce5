"""Every config that validates trains (or fails with one line): random damage to a tiny
project's training fields, then — when `llmlab validate` passes — two steps of pretraining in
process through `engine.worker.run`, which must end in a report or an LLMLabError, never another
exception (a torch ValueError, an allocation error, a nan that says "completed").

The sizes are forced tiny after the damage (and the data, the tokenizer and torch.compile left as
they are), so each example trains in about a second; the size rule and the data rules have tests
of their own."""

from __future__ import annotations

import itertools
import json
import math
import random
import tomllib

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.project.problems import LLMLabError
from engine.worker import run
from tests.engine.commands.test_new_validate_info import _mutate
from tests.tiny_project import Recorder, make_project

# values near each rule's edges, plus a little junk: most damage is then still valid
EDGY = st.one_of(
    st.sampled_from([0, 1, 2, -1, 99, 100, 1000, 2**31, 2**32, 2**63 - 1]),
    st.sampled_from([0.0, 1e-300, 1e-8, 0.5, 0.999, 1.0, 1.5, 10.0, 1e6, 1e30, 1e300, -0.5]),
    st.floats(-10, 10, allow_nan=False),
    st.booleans(),
    st.sampled_from(["rope", "alibi", "sinusoidal", "yarn", "mha", "mqa", "gqa", "layernorm", "rmsnorm"]),
    st.sampled_from(["relu", "gelu", "silu", "swiglu", "muon", "lion", "sophia", "adafactor", "adamw"]),
    st.sampled_from(["cosine", "linear", "polynomial", "none", "original", ""]),
)

TINY_MODEL = {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_ff": 64}
TINY_STAGE = {"steps": 2, "batch_size": 2, "grad_accum": 1, "eval_batches": 1, "compile": False}
_examples = itertools.count()


def _damaged(tmp_path, seed: int, junk: list):
    root = make_project(tmp_path / f"p{next(_examples)}", paragraphs=60)
    data = tomllib.loads((root / "project.toml").read_text())
    data["pretrain"]["optimizer"] = {"name": random.Random(seed).choice(["adamw", "lion", "muon", "sophia"])}
    keep = {"name": data["name"], "tokenizer": data["tokenizer"], "datasets": data["pretrain"].pop("datasets")}
    # damage only what a person tunes: the seed, the model's kind, the stage's training settings
    damaged = _mutate(
        {"seed": data["seed"], "model": data["model"], "pretrain": data["pretrain"]}, random.Random(seed), junk
    )
    damaged = {key: value for key, value in damaged.items() if key in ("seed", "model", "pretrain")}
    for table, tiny in (("model", TINY_MODEL), ("pretrain", TINY_STAGE)):
        if isinstance(damaged.get(table), dict):
            damaged[table].update(tiny)
    if isinstance(damaged.get("pretrain"), dict):
        seq = damaged["pretrain"].get("seq_len")
        damaged["pretrain"]["seq_len"] = min(seq, 32) if isinstance(seq, int) and not isinstance(seq, bool) else 32
        damaged["pretrain"]["datasets"] = keep["datasets"]
    model = damaged.get("model")
    if isinstance(model, dict) and isinstance(model.get("max_seq_len"), int):
        model["max_seq_len"] = min(model["max_seq_len"], 256)
    (root / "project.toml").write_text(tomli_w.dumps({"name": keep["name"], "tokenizer": keep["tokenizer"], **damaged}))
    return root


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), junk=st.lists(EDGY, min_size=1, max_size=2))
def test_damage_that_validates_trains_two_steps_or_fails_with_one_line(tmp_path, capsys, seed, junk):
    if any(isinstance(v, float) and not math.isfinite(v) for v in junk):
        return
    root = _damaged(tmp_path, seed, junk)
    code = main(["validate", str(root)])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        return
    events = Recorder()
    try:
        report = run(root, "pretrain", events=events, device="cpu")
    except LLMLabError as error:
        assert error.lines and all(line.strip() for line in error.lines)
        return
    assert isinstance(report, dict)
    finished = events.of("finished")
    assert finished and finished[-1]["status"] in ("completed", "stopped", "diverged")
    losses = [e["loss"] for e in events.of("metrics")]
    if finished[-1]["status"] == "completed":
        assert losses and all(math.isfinite(x) for x in losses), (json.loads(json.dumps(losses)), junk)


def test_the_tiny_undamaged_project_trains_its_two_steps(tmp_path):
    root = _damaged(tmp_path, 0, [])
    events = Recorder()
    report = run(root, "pretrain", events=events, device="cpu")
    assert isinstance(report, dict) and events.of("finished")[-1]["status"] == "completed"
    assert len(events.of("metrics")) == 2
