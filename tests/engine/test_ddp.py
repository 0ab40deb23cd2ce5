"""Data parallelism: 2 gloo processes with batch b each train the weights of 1 process with batch 2b."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from engine import worker
from engine.events import read_events
from engine.project import load_project
from engine.project.runs import METRICS_FILE, list_runs
from tests.tiny_project import make_project

FIELDS = dict(steps=4, eval_every=2, sample_every=0, save_every=0, lr=1e-2, grad_accum=2)


def _rank_main(rank: int, project: str, port: int) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    # rank 0 alone reports to the tracking tools (tensorboard: the test extra has it)
    worker.run(project, "pretrain", ["pretrain.batch_size=2", 'tracking.report_to=["tensorboard"]'], device="cpu")
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_weights(project) -> dict:
    [run] = list_runs(load_project(project), "pretrain")
    return load_file(run / "final" / "model.safetensors")


def test_two_gloo_processes_give_the_weights_of_one_with_the_global_batch(tmp_path):
    single = make_project(tmp_path / "single", batch_size=4, **FIELDS)
    double = make_project(tmp_path / "double", batch_size=4, **FIELDS)
    worker.run(single, "pretrain", device="cpu")
    mp.start_processes(_rank_main, args=(str(double), _free_port()), nprocs=2, start_method="spawn")

    one, two = final_weights(single), final_weights(double)
    assert one.keys() == two.keys()
    for name in one:  # the all-reduce sums in another order: Adam's step turns that rounding into ~1e-6
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-5)
    [run] = list_runs(load_project(double), "pretrain")  # rank 0 alone made a run and wrote events
    kinds = [e["type"] for e in read_events(run / METRICS_FILE)]
    assert kinds.count("started") == 1 and kinds.count("metrics") == 4 and kinds[-1] == "finished"
    [board] = (run / "tensorboard").iterdir()  # one event file: rank 1 reported nothing
    assert board.name.startswith("events.out.tfevents")
