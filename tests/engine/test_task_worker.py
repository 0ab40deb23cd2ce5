"""The app's one-shot tools: `inspect` reports a view of a model as plain, picklable data."""

import pickle

import torch

from engine.factory import build_model
from engine.inspection.views import inspect_model
from engine.project import ModelConfig, Project
from engine.task_worker import tool
from engine.tokenizer import byte_tokenizer
from tests.tiny_project import Recorder


def test_inspect_reports_a_view(tmp_path):
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(Project(model=ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64)), tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    events = Recorder()
    report = tool("inspect", events, None, model_dir=str(tmp_path), view="lens", prompt="ab", device="cpu")
    assert report == inspect_model(str(tmp_path), "lens", "cpu", prompt="ab")
    (finished,) = events.of("finished")
    assert pickle.loads(pickle.dumps(finished)) == finished and finished["report"]["layers"] == report["layers"]
