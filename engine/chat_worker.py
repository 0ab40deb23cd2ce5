"""The chat worker: loads one model directory once, then answers requests from its control queue,
streaming each reply as `token` events and closing it with a `reply` event.

Torch-free at import (the app starts `chat` through engine.worker.start_chat). Requests are dicts:

    {"type": "generate", "messages": [{"role", "content"}, ...], "chat": True,
     "max_new_tokens": 128, "temperature": 0.8, "top_k": 0, "top_p": 1.0}
    {"type": "stop"}                                     # the worker exits

With `chat` the conversation goes through the tokenizer's chat template (multi-turn); without it
the last message's content is the text to continue (base models). A bad request gets an `error`
event and the worker keeps serving; a failure to load the model ends it.
"""

from __future__ import annotations

import os
import queue
import time
from typing import Any, Callable

from engine import events as ev
from engine.project.problems import LLMLabError

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "repetition_penalty")


class ChatModel:
    """A model directory loaded with its tokenizer, generating streamed replies."""

    def __init__(self, model_dir: str, device: str | None = None):
        from transformers import AutoTokenizer

        from engine.device import pick_device
        from engine.factory import load_model

        self.device = pick_device(device)
        self.model = load_model(model_dir, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
        except (OSError, ValueError) as error:
            raise LLMLabError(f"model_dir: {model_dir} has no loadable tokenizer files: {error}") from error

    @property
    def has_template(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def prompt(self, messages: list[dict], chat: bool) -> list[int]:
        from engine.chat_template import encode_prompt

        if not messages:
            raise LLMLabError("messages: nothing to answer yet")
        if not chat:
            return self.tokenizer(messages[-1]["content"])["input_ids"]
        if not self.has_template:
            raise LLMLabError("chat: this model's tokenizer has no chat template (use completion mode)")
        return encode_prompt(self.tokenizer, messages)

    def generate(self, request: dict, emit: Callable[[dict], None]) -> dict:
        """Stream the reply to `request` through `emit`; return the `reply` event."""
        import torch

        from engine.chat_template import end_of_turn_ids
        from engine.generation import sampling_config

        chat = bool(request.get("chat", True))
        eos = list(dict.fromkeys([*end_of_turn_ids(self.tokenizer), self.tokenizer.eos_token_id])) if chat else None
        sampling = {key: request[key] for key in SAMPLING_KEYS if key in request}
        config = sampling_config(self.model.generation_config, int(request.get("max_new_tokens", 128)),
                                 eos_token_ids=eos, **sampling)
        ids = self.prompt(request.get("messages", []), chat)
        if not ids:
            raise LLMLabError("prompt: it encodes to no tokens; give some text")
        ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                      streamer=_streamer(self.tokenizer, emit))
        new = out[0, ids.shape[1]:]
        seconds = time.perf_counter() - start
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return ev.event("reply", text=text, tokens=len(new), tokens_per_s=len(new) / seconds if seconds else 0.0)


def _streamer(tokenizer, emit: Callable[[dict], None]):
    """A transformers streamer that emits each finished piece of text as a `token` event."""
    from transformers import TextStreamer

    class EventStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                emit(ev.event("token", text=text))

    return EventStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def chat(model_dir: str, events: Any, control: Any, device: str | None = None) -> None:
    """Serve generate requests for `model_dir` until a `stop` request or the parent's exit."""
    try:
        model = ChatModel(model_dir, device)
    except BaseException as error:
        events.put(ev.error_event(error))
        raise
    events.put(ev.event("started", model_dir=str(model_dir), chat_template=model.has_template,
                        device=str(model.device), parameters=sum(p.numel() for p in model.model.parameters())))
    parent = os.getppid()
    while os.getppid() == parent:  # an app that died without saying stop leaves no chat model behind
        try:
            request = control.get(timeout=1.0)
        except queue.Empty:
            continue
        kind = request.get("type") if isinstance(request, dict) else request
        if kind == "stop":
            return
        try:
            events.put(model.generate(request, events.put))
        except Exception as error:  # a bad request: report it and keep serving
            events.put(ev.error_event(error))
