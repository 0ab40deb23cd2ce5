"""`llmlab stop` / `llmlab save` from a shell: a request file in the run folder, refused for a run
that nothing trains."""

from __future__ import annotations

import os

from engine.cli import main
from engine.project.run_control import take_requests
from engine.project.run_lock import RunLock


def test_stop_and_save_reach_a_live_run(tmp_path, capsys):
    run = tmp_path / "pretrain-20260101-120000"
    run.mkdir()
    assert main(["stop", str(run)]) == 2
    assert capsys.readouterr().err == f"{run}: no process is training this run (nothing to stop)\n"
    with RunLock(run):
        assert main(["save", str(run)]) == 0
        assert main(["stop", str(run)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[1] == f"{run.name}: asked pid {os.getpid()}; it will checkpoint, then stop after its current step"
        assert take_requests(run) == ["save", "stop"]
