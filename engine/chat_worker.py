"""The chat worker: loads one model directory once, then answers requests from its control queue,
streaming each reply as `token` events and closing it with a `reply` event.

Torch-free at import (the app starts `chat` through engine.worker.start_chat). Requests are dicts:

    {"type": "generate", "messages": [{"role", "content"}, ...], "chat": True,
     "max_new_tokens": 128, "temperature": 0.8, "top_k": 0, "top_p": 1.0}
    {"type": "cancel"}                                   # end the reply being generated
    {"type": "stop"}                                     # the worker exits

While a reply streams the worker checks its control queue between tokens (a transformers
StoppingCriteria that reads it without blocking): `cancel` ends the reply there, and its `reply`
event says `stopped: True` with the text and tokens generated so far; `stop` ends the reply the
same way and then the worker. Any other request read meanwhile (the next generate) is kept and
served after, in order; a `cancel` that arrives when nothing is generating is ignored.

With `chat` the conversation goes through the tokenizer's chat template (multi-turn); without it
the last message's content is the text to continue (base models). A bad request gets an `error`
event and the worker keeps serving; a failure to load the model ends it. A sampling setting that
is not a finite number in its range, or a prompt that fills the model's context, is a bad request;
a `max_new_tokens` past the context is clamped to what it leaves, said by a warning `log` event
before the reply and by the `reply` event's `note`.

The `reply` event's `token_probs` scores each generated token (end-of-turn included), in order:
{id, token, prob, loss, bits, top: [{id, token, prob}] × ALTERNATIVES} (engine.inspection.tokens
`token_rows`). The probabilities are the model's own: the softmax of the raw logits `generate()`
kept at each step (`output_logits`, no extra forward), before temperature, top-k, top-p and the
repetition penalty reshape them for sampling, so a sampled token the model found unlikely shows so.
"""

from __future__ import annotations

import collections
import os
import queue
import time
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine.project.problems import LLMLabError

SAMPLING_KEYS = ("temperature", "top_k", "top_p", "repetition_penalty")
ALTERNATIVES = 5  # the likeliest tokens each reply token is shown with


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

    def generate(self, request: dict, emit: Callable[[dict], None], control: Controls | None = None) -> dict:
        """Stream the reply to `request` through `emit`; return the `reply` event.

        `control`: the worker's requests, checked between tokens; a cancel (or stop) read there ends
        the reply early (`stopped: True`)."""
        import torch
        from transformers import StoppingCriteriaList

        from engine.chat_template import end_of_turn_ids
        from engine.generation import context_length, fit_context, sampling_config, sampling_problems
        from engine.inspection.tokens import token_rows

        chat = bool(request.get("chat", True))
        eos = list(dict.fromkeys([*end_of_turn_ids(self.tokenizer), self.tokenizer.eos_token_id])) if chat else None
        sampling = {key: request[key] for key in SAMPLING_KEYS if key in request}
        requested = request.get("max_new_tokens", 128)
        problems = sampling_problems(dict(max_new_tokens=requested, **sampling))
        if problems:
            raise LLMLabError(problems)
        ids = self.prompt(request.get("messages", []), chat)
        if not ids:
            raise LLMLabError("prompt: it encodes to no tokens; give some text")
        max_new_tokens, note = fit_context(len(ids), requested, context_length(self.model))
        if note:
            emit(ev.log(note, "warning"))
        config = sampling_config(self.model.generation_config, max_new_tokens, eos_token_ids=eos, **sampling)
        ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        check = control.criteria(ids.device) if control is not None else None
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                streamer=_streamer(self.tokenizer, emit),
                stopping_criteria=StoppingCriteriaList([check] if check is not None else []),
                output_logits=True,  # the raw logits of each step, for token_probs
                return_dict_in_generate=True,
            )
        new = out.sequences[0, ids.shape[1] :]
        seconds = time.perf_counter() - start
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        logits = torch.cat(out.logits)  # (new tokens, vocab): step t's row predicted new[t]
        return ev.event(
            "reply",
            text=text,
            tokens=len(new),
            tokens_per_s=len(new) / seconds if seconds else 0.0,
            token_probs=token_rows(self.tokenizer, new.tolist(), logits, ALTERNATIVES),
            stopped=bool(check is not None and check.stopped),
            **({"note": note} if note else {}),
        )


class Controls:
    """The worker's control queue with the requests read ahead of their turn.

    `next(timeout)` gives the next request (the kept ones first); `criteria(device)` is a
    StoppingCriteria for one generation that reads the queue without blocking at each token: a
    `cancel` or `stop` ends the generation (`stop` also sets `stopping`), anything else is kept.
    """

    def __init__(self, control: Any):
        self.control = control
        self.pending: collections.deque = collections.deque()
        self.stopping = False

    def next(self, timeout: float) -> Any:
        """The next request; raises queue.Empty when none came within `timeout` seconds."""
        if self.pending:
            return self.pending.popleft()
        return self.control.get(timeout=timeout)

    def criteria(self, device):
        import torch
        from transformers import StoppingCriteria

        controls = self
        go_on = torch.zeros(1, dtype=torch.bool, device=device)
        done = torch.ones(1, dtype=torch.bool, device=device)

        class CancelCheck(StoppingCriteria):
            stopped = False

            def __call__(self, input_ids, scores, **kwargs):
                while not self.stopped:
                    try:
                        request = controls.control.get_nowait()
                    except queue.Empty:
                        return go_on
                    kind = request_type(request)
                    if kind in ("cancel", "stop"):
                        self.stopped = True
                        controls.stopping = controls.stopping or kind == "stop"
                    else:
                        controls.pending.append(request)
                return done

        return CancelCheck()


def request_type(request: Any) -> Any:
    """A request's type: a dict's `type`, or the request itself (a plain "stop")."""
    return request.get("type") if isinstance(request, dict) else request


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
    events.put(
        ev.event(
            "started",
            model_dir=str(model_dir),
            chat_template=model.has_template,
            device=str(model.device),
            parameters=sum(p.numel() for p in model.model.parameters()),
        )
    )
    controls = Controls(control)
    parent = os.getppid()
    while os.getppid() == parent:  # an app that died without saying stop leaves no chat model behind
        try:
            request = controls.next(timeout=1.0)
        except queue.Empty:
            continue
        kind = request_type(request)
        if kind == "stop":
            return
        if kind == "cancel":  # it came after its reply had ended: nothing left to stop
            continue
        try:
            events.put(model.generate(request, events.put, controls))
        except Exception as error:  # a bad request: report it and keep serving
            events.put(ev.error_event(error))
        if controls.stopping:  # a stop read while generating: the reply has ended, now the worker
            return
