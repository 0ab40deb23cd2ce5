"""The chat worker with a real ChatModel on a tiny model: a cancel read between tokens ends the reply
(`stopped`, the text so far), requests read meanwhile are still served, a stop ends reply and worker;
each reply token's probability and alternatives are the model's own."""

from __future__ import annotations

import queue
import threading

import pytest
import torch

from engine.chat_worker import ALTERNATIVES, ChatModel, chat
from engine.factory import build_model
from engine.project import ModelConfig, Project
from engine.tokenizer import byte_tokenizer

LONG = 200  # max_new_tokens of a reply meant to be cut short


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random model that never stops early, with its byte tokenizer (no chat template)."""
    root = tmp_path_factory.mktemp("chat-model")
    torch.manual_seed(0)
    tokenizer = byte_tokenizer()
    model = build_model(
        Project(model=ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64)), tokenizer
    ).eval()
    model.generation_config.eos_token_id = None
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def generate(max_new_tokens: int, prompt: str = "the cat") -> dict:
    return {
        "type": "generate",
        "messages": [{"role": "user", "content": prompt}],
        "chat": False,
        "max_new_tokens": max_new_tokens,
        "temperature": 0,
    }


class Sink(list):
    """The worker's events queue: keeps every event; `on_token` runs at each streamed token."""

    def __init__(self, on_token=None):
        super().__init__()
        self.on_token = on_token
        self.arrived = threading.Condition()

    def put(self, event: dict) -> None:
        with self.arrived:
            self.append(event)
            self.arrived.notify_all()
        if event["type"] == "token" and self.on_token is not None:
            self.on_token(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self if e["type"] == kind]

    def wait(self, condition, timeout: float = 60.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(condition, timeout), f"timed out: {[e['type'] for e in self]}"


def serve(model_dir, events, control) -> threading.Thread:
    worker = threading.Thread(target=chat, args=(str(model_dir), events, control, "cpu"), daemon=True)
    worker.start()
    return worker


def test_a_cancel_sent_while_streaming_ends_the_reply_with_what_came_so_far(model_dir):
    control = queue.Queue()
    sent = []

    def cancel_once(event):  # the app's key: pressed once the reply has started to stream
        if not sent:
            sent.append(event)
            control.put({"type": "cancel"})

    events = Sink(cancel_once)
    control.put(generate(LONG))
    worker = serve(model_dir, events, control)
    events.wait(lambda: events.of("reply") or events.of("error"))
    assert not events.of("error")
    (reply,) = events.of("reply")
    assert reply["stopped"] is True and 1 <= reply["tokens"] < LONG
    assert reply["text"] == "".join(e["text"] for e in events.of("token")) and reply["text"]

    control.put(generate(4))  # the worker keeps serving, and a reply that ran its course is not stopped
    events.wait(lambda: len(events.of("reply")) == 2)
    assert events.of("reply")[1]["stopped"] is False and events.of("reply")[1]["tokens"] == 4
    control.put({"type": "stop"})
    worker.join(30)
    assert not worker.is_alive()


def test_a_generate_read_while_streaming_is_served_after_the_cancelled_reply(model_dir):
    control = queue.Queue()
    for request in (generate(LONG), generate(5, "a dog"), {"type": "cancel"}):  # the 2nd and the cancel are
        control.put(request)  # read by the first reply's check, in that order
    events = Sink()
    worker = serve(model_dir, events, control)
    events.wait(lambda: len(events.of("reply")) == 2 or events.of("error"))
    assert not events.of("error")
    first, second = events.of("reply")
    assert first["stopped"] is True and first["tokens"] < LONG
    assert second["stopped"] is False and second["tokens"] == 5
    control.put("stop")
    worker.join(30)
    assert not worker.is_alive()


def test_a_stop_read_while_streaming_ends_the_reply_then_the_worker(model_dir):
    control = queue.Queue()
    for request in (generate(LONG), {"type": "stop"}, generate(5)):
        control.put(request)
    events = Sink()
    worker = serve(model_dir, events, control)
    worker.join(60)
    assert not worker.is_alive()
    (reply,) = events.of("reply")  # the generate after the stop is never served
    assert reply["stopped"] is True and reply["tokens"] < LONG
    assert not events.of("error")


def test_a_cancel_with_nothing_to_stop_is_ignored(model_dir):
    control = queue.Queue()
    for request in ({"type": "cancel"}, generate(3)):
        control.put(request)
    events = Sink()
    worker = serve(model_dir, events, control)
    events.wait(lambda: events.of("reply") or events.of("error"))
    assert not events.of("error")
    assert events.of("reply")[0]["stopped"] is False and events.of("reply")[0]["tokens"] == 3
    control.put("stop")
    worker.join(30)
    assert not worker.is_alive()


def test_bad_settings_and_a_prompt_past_the_context_are_error_events_and_the_worker_serves_on(model_dir):
    control = queue.Queue()
    for request in (
        {**generate(3), "temperature": float("nan")},
        {**generate(3), "repetition_penalty": float("nan")},
        generate(3, prompt="x" * 600),  # the tiny model's context is 512 tokens
        generate(3),
    ):
        control.put(request)
    events = Sink()
    worker = serve(model_dir, events, control)
    events.wait(lambda: events.of("reply"))
    errors = [e["message"] for e in events.of("error")]
    assert errors[0] == "temperature: must be >= 0 (0 is greedy), a finite number, got nan"
    assert errors[1] == "repetition_penalty: must be > 0 (1 is none), a finite number, got nan"
    assert errors[2].startswith("prompt: 600 tokens, but the model's context is 512 tokens")
    assert events.of("reply")[0]["tokens"] == 3
    control.put("stop")
    worker.join(30)


def test_max_new_tokens_past_the_context_is_clamped_and_said(model_dir):
    control = queue.Queue()
    control.put(generate(10_000, prompt="x" * 500))
    events = Sink()
    worker = serve(model_dir, events, control)
    events.wait(lambda: events.of("reply") or events.of("error"))
    assert not events.of("error")
    [reply] = events.of("reply")
    note = (
        "max_new_tokens: 10000 would pass the model's 512-token context after this 500-token prompt; "
        "generating at most 12"
    )
    assert reply["tokens"] == 12 and reply["note"] == note
    assert [e["message"] for e in events.of("log")] == [note]
    control.put("stop")
    worker.join(30)


def test_a_replys_token_probs_are_the_softmax_of_one_forward_over_the_generated_sequence(model_dir):
    """Read from the logits generate() kept (KV cache, no extra forward), they equal the softmax of a
    full forward over prompt + reply; the sampling settings reshape the draw, not what is shown."""
    model = ChatModel(str(model_dir), "cpu")
    request = {**generate(12), "temperature": 1.5, "top_k": 4, "top_p": 0.9}
    torch.manual_seed(0)
    reply = model.generate(request, lambda event: None)
    rows = reply["token_probs"]
    prompt = model.prompt(request["messages"], chat=False)
    ids = prompt + [row["id"] for row in rows]
    assert len(rows) == reply["tokens"] == 12
    assert model.tokenizer.decode(ids[len(prompt) :]) == reply["text"]
    with torch.no_grad():
        probs = model.model(torch.tensor([ids[:-1]])).logits[0, len(prompt) - 1 :].softmax(-1)  # (12, V)
    top = probs.topk(ALTERNATIVES)
    for t, row in enumerate(rows):
        assert row["prob"] == pytest.approx(probs[t, row["id"]].item(), rel=1e-4, abs=1e-7)
        assert row["token"] == model.tokenizer.decode([row["id"]])
        shown = [alt["prob"] for alt in row["top"]]
        assert shown == sorted(shown, reverse=True)
        assert shown == pytest.approx(top.values[t].tolist(), rel=1e-4, abs=1e-7)
        assert [alt["id"] for alt in row["top"]] == top.indices[t].tolist()
        assert [alt["token"] for alt in row["top"]] == [model.tokenizer.decode([i]) for i in top.indices[t]]
