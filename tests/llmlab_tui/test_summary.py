"""The architecture summary's training memory: in the precision a run on this machine will use,
told from the NVIDIA driver's files (no torch), shown on F2; and what a stage's run amounts to,
beside F3's form where the terminal is wide."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.project import load_project, sizing
from llmlab_tui import summary
from llmlab_tui.screens.architecture import ArchitectureScreen
from llmlab_tui.screens.stages import StagesScreen
from tests.llmlab_tui.pilot_keys import app_on, show, tab_to, wait_for


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake machine: `machine(gpus=n, visible=...)` makes its driver list n GPUs."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def make(gpus: int = 0, devices: int = 0, visible: str | None = None) -> str:
        root = tmp_path / f"machine-{gpus}-{devices}-{visible}"
        (root / "gpus").mkdir(parents=True)
        (root / "dev").mkdir()
        for i in range(gpus):
            (root / "gpus" / f"0000:0{i}:00.0").mkdir()
        for i in range(devices):
            (root / "dev" / f"nvidia{i}").touch()
        (root / "dev" / "nvidiactl").touch()  # the control device alone is no GPU
        monkeypatch.setattr(summary, "NVIDIA_GPUS", root / "gpus")
        monkeypatch.setattr(summary, "NVIDIA_DEVICES", root / "dev")
        if visible is not None:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        summary.this_machine_precision.cache_clear()
        return summary.this_machine_precision()

    yield make
    summary.this_machine_precision.cache_clear()


def test_the_precision_follows_the_gpus_the_driver_lists(machine):
    assert machine() == "fp32"
    assert machine(gpus=1) == "bf16"
    assert machine(devices=2) == "bf16"  # a container given /dev/nvidia0, /dev/nvidia1
    assert machine(gpus=1, visible="") == "fp32"  # CUDA_VISIBLE_DEVICES hides them all
    assert machine(gpus=1, visible="-1") == "fp32"
    assert machine(gpus=1, visible="0") == "bf16"


def test_the_memory_is_the_one_of_that_precision(projects_dir):
    project = load_project(projects_dir / "alpha")
    vocab = sizing.padded_vocab_size(sizing.tokenizer_vocab_size(project.tokenizer))
    table = sizing.training_memory(project, vocab)
    for precision in ("fp32", "bf16"):
        size = summary.model_size(project, precision)
        assert size.memory == table[precision]["total"] and size.precision == precision
    assert table["fp32"]["total"] > table["bf16"]["total"]  # fp32 activations take twice the room


@pytest.mark.parametrize(("gpus", "shown"), [(0, "fp32 CPU"), (1, "bf16 GPU")])
async def test_f2_shows_the_memory_this_machine_will_use(projects_dir, machine, gpus, shown):
    precision = machine(gpus=gpus)
    project = load_project(projects_dir / "alpha")
    expected = summary.gib(summary.model_size(project, precision).memory)
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ArchitectureScreen))
        text = str(app.screen.query_one("#arch-summary").render())
        assert f"train memory {expected} {shown}" in text


def test_a_stages_run_in_numbers(projects_dir):
    project = load_project(projects_dir / "alpha")
    cfg = project.pretrain
    lines = summary.stage_lines(sizing.with_stage(project, "pretrain", batch_size=4, grad_accum=3), "pretrain")
    assert lines[0].split() == ["batch", "4", "×", "3", "=", "12", "sequences"]
    assert lines[1].startswith(f"tokens/step  ≤ {summary.count(12 * cfg.seq_len)}")
    assert f"in {cfg.steps} steps" in lines[2] and summary.count(12 * cfg.seq_len * cfg.steps) in lines[2]
    dpo, pairs = summary.stage_lines(project, "dpo"), project.dpo.batch_size * project.dpo.grad_accum
    assert "pairs" in dpo[0] and summary.count(2 * pairs * project.dpo.seq_len) in dpo[1]  # chosen and rejected
    assert summary.stage_lines(project, "grpo")[1] == "tokens/step  as the rollouts run"


async def test_f3_shows_the_run_beside_the_form_when_wide_and_follows_edits(projects_dir):
    app = app_on(projects_dir / "alpha", projects_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        stages = await show(pilot, "f3", StagesScreen)
        panel = stages.query_one("#stage-summary")
        await wait_for(pilot, lambda: "sequences" in str(panel.render()))
        assert panel.display and panel.region.x > stages.query_one("#stage-body").region.right - 1
        await tab_to(pilot, "pretrain-grad_accum")
        await pilot.press("end", "ctrl+u", "5")
        batch = stages.project.pretrain.batch_size
        await wait_for(pilot, lambda: f"{batch} × 5 = {5 * batch} sequences" in str(panel.render()))
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: not panel.display)
