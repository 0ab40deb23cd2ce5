"""The chat screen against a scripted chat worker: Ctrl+G stops a streaming reply, which stays in the
conversation marked as stopped; the key is offered only while a reply streams. Ctrl+T shows a reply
as its tokens coloured by probability, with a cursor whose token's alternatives show on a line."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from llmlab_tui.runner import QueueSource
from llmlab_tui.screens.chat import ChatScreen
from tests.llmlab_tui.pilot_keys import app_on, show, type_into, wait_for

TOKEN_SECONDS = 0.02


def scored(i: int) -> dict:
    """The `token_probs` row of `word{i} `: 0.9 / (i + 1), so the first tokens are likely and the
    later ones not, with two alternatives of its own."""
    prob = 0.9 / (i + 1)
    top = sorted([(f"word{i} ", prob), (f"alt{i}a", 0.06), (f"alt{i}b", 0.04)], key=lambda alt: -alt[1])
    return {"id": i, "token": f"word{i} ", "prob": prob, "top": [{"id": 0, "token": t, "prob": p} for t, p in top]}


class ScriptedChat(QueueSource):
    """Serves generate requests like engine.chat_worker, from a thread: one `word{i} ` token every
    TOKEN_SECONDS up to max_new_tokens, checking its control queue between tokens (cancel, stop); the
    reply scores its tokens as `scored` says."""

    def __init__(self, model_dir: str) -> None:
        super().__init__()
        self.requests: list = []
        self.queue.put({"type": "started", "model_dir": model_dir, "parameters": 1234, "device": "cpu"})
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            request = self.control.get()
            self.requests.append(request)
            kind = request.get("type") if isinstance(request, dict) else request
            if kind == "stop":
                return self.close(0)
            if kind == "generate" and self._generate(request["max_new_tokens"]):
                return self.close(0)

    def _generate(self, max_new_tokens: int) -> bool:
        """Stream one reply; True when a stop came meanwhile."""
        text, stopped, stop = "", False, False
        for i in range(max_new_tokens):
            piece = f"word{i} "
            text += piece
            self.queue.put({"type": "token", "text": piece})
            time.sleep(TOKEN_SECONDS)
            try:
                request = self.control.get_nowait()
            except queue.Empty:
                continue
            self.requests.append(request)
            stop = request == "stop" or request.get("type") == "stop"
            stopped = True
            break
        tokens = len(text.split())
        self.queue.put(
            {
                "type": "reply",
                "text": text,
                "tokens": tokens,
                "tokens_per_s": 50.0,
                "stopped": stopped,
                "token_probs": [scored(i) for i in range(tokens)],
            }
        )
        return stop


@pytest.fixture
def chat_project(projects_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Project alpha with one model directory, and the scripted worker in place of start_chat."""
    final = projects_dir / "alpha" / "runs" / "pretrain-20260101-120000" / "final"
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    workers: list[ScriptedChat] = []

    def start_chat(model_dir):
        workers.append(ScriptedChat(str(model_dir)))
        return workers[-1]

    monkeypatch.setattr("llmlab_tui.screens.chat.start_chat", start_chat)
    yield projects_dir / "alpha", workers
    for worker in workers:
        worker.control.put("stop")


def offered(screen) -> bool:
    """Whether Ctrl+G (stop reply) is active, so in the footer."""
    return "ctrl+g" in screen.active_bindings


async def test_ctrl_g_stops_a_streaming_reply_and_marks_it(chat_project):
    project, workers = chat_project
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        assert not offered(chat)
        await pilot.press(*"hi", "enter")
        await wait_for(pilot, lambda: chat.reply.count("word") >= 3)
        assert offered(chat)
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: chat.stream is None)

        assert workers[0].requests[-1] == {"type": "cancel"}
        partial = chat.history[-1]
        assert partial["role"] == "assistant" and partial["content"].startswith("word0 word1 word2 ")
        assert len(partial["content"].split()) < 128  # the settings' max: cut short
        reply = chat.query_one(".chat-reply")
        await wait_for(pilot, lambda: reply.source == partial["content"])  # the partial reply stays on screen
        assert reply.has_class("stopped")
        log = chat.query_one("#chat-log")
        assert log.children[-1].has_class("chat-stopped") and log.children[-2] is reply
        assert "[stopped]" in str(log.children[-1].render())
        assert "stopped" in str(chat.query_one("#chat-status").render())
        assert not offered(chat)

        # regenerate replaces the stopped reply and its mark; the conversation keeps 2 turns
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: chat.reply.count("word") >= 2)
        assert not chat.query(".chat-stopped") and len(chat.query(".chat-reply")) == 1
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: chat.stream is None)
        assert len(chat.history) == 2 and len(chat.query(".chat-stopped")) == 1


async def test_ctrl_g_does_nothing_without_a_streaming_reply(chat_project):
    project, workers = chat_project
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "f5", ChatScreen)
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert not workers and not app.screen.query(".chat-stopped")


def styles_shown(view) -> list[tuple[str, str, bool]]:
    """(text, background colour, reversed) of each run of the view's first line as drawn."""
    line = view.render_line(0)
    return [(s.text, str(s.style.bgcolor), bool(s.style.reverse)) for s in line if s.text.strip()]


async def test_ctrl_t_colours_a_reply_by_probability_and_the_cursor_shows_each_tokens_alternatives(chat_project):
    project, _workers = chat_project
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        await type_into(pilot, "chat-max_new_tokens", "3")
        chat.query_one("#chat-input").focus()
        await pilot.press(*"hi", "enter")
        await wait_for(pilot, lambda: len(chat.history) == 2)
        await wait_for(pilot, lambda: chat.query(".chat-probs"))
        reply, view, top = chat.query_one(".chat-reply"), chat.query_one(".chat-probs"), chat.query_one("#chat-top")
        assert reply.display and not view.display and not top.display  # the text, as it streamed

        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: view.display and not reply.display and top.display)
        assert app.focused is view
        runs = styles_shown(view)  # word0 likely (0.9), word1 and word2 less so (0.45, 0.3)
        assert "".join(text for text, _, _ in runs).startswith("word0 word1 word2")
        backgrounds = {text.strip(): colour for text, colour, _ in runs}
        assert backgrounds["word0"] != backgrounds["word1"] == backgrounds["word2"]
        assert [text.strip() for text, _, cursor in runs if cursor] == ["word0"]
        line = lambda: " ".join(str(top.render()).split())
        assert line() == "token 1/3 word0␣ 90.0% · word0␣ 90.0% alt0a 6.0% alt0b 4.0%"

        await pilot.press("right")
        await wait_for(pilot, lambda: line().startswith("token 2/3"))
        assert line() == "token 2/3 word1␣ 45.0% · word1␣ 45.0% alt1a 6.0% alt1b 4.0%"
        assert [text.strip() for text, _, cursor in styles_shown(view) if cursor] == ["word1"]
        await pilot.press("end")
        await wait_for(pilot, lambda: line().startswith("token 3/3 word2␣ 30.0%"))
        await pilot.press("right")  # past the last token it stays
        await pilot.pause()
        assert line().startswith("token 3/3")

        await pilot.press("ctrl+r")  # the regenerated reply's view replaces this one, the cursor on it
        await wait_for(pilot, lambda: view not in chat.query(".chat-probs") and chat.query(".chat-probs"))
        view = chat.query_one(".chat-probs")
        await wait_for(pilot, lambda: app.focused is view and line().startswith("token 1/3"))
        assert len(chat.query(".chat-reply")) == 1 and not chat.query_one(".chat-reply").display

        await pilot.press("end", "tab")  # to the input, to type on: the colours stay
        await wait_for(pilot, lambda: app.focused is chat.query_one("#chat-input"))
        assert line().startswith("token 3/3") and view.display
        await pilot.press(*"more", "enter")  # the new reply's first token is on the line, the focus stays
        await wait_for(pilot, lambda: len(chat.query(".chat-probs")) == 2 and line().startswith("token 1/3"))
        assert app.focused is chat.query_one("#chat-input") and all(v.display for v in chat.query(".chat-probs"))

        await pilot.press("ctrl+t")
        replies = lambda: chat.query(".chat-reply")
        await wait_for(pilot, lambda: all(r.display for r in replies()) and not view.display and not top.display)
        assert app.focused is chat.query_one("#chat-input")


class ByteContextChat(ScriptedChat):
    """A scripted worker with a 256-token context of one token per character: a prompt that fills
    it is refused the way engine.chat_worker refuses it (engine.generation.fit_context)."""

    CONTEXT = 256

    def _serve(self) -> None:
        from engine import events as ev
        from engine.generation import fit_context
        from engine.project import LLMLabError

        while True:
            request = self.control.get()
            self.requests.append(request)
            if request == "stop" or request.get("type") == "stop":
                return self.close(0)
            try:
                prompt = sum(len(m["content"]) for m in request["messages"])
                fit_context(prompt, request["max_new_tokens"], self.CONTEXT)
            except LLMLabError as error:
                self.queue.put(ev.error_event(error))
                continue
            self._generate(request["max_new_tokens"])


@pytest.fixture
def small_context(chat_project, monkeypatch: pytest.MonkeyPatch):
    project, workers = chat_project

    def start_chat(model_dir):
        workers.append(ByteContextChat(str(model_dir)))
        return workers[-1]

    monkeypatch.setattr("llmlab_tui.screens.chat.start_chat", start_chat)
    return project, workers


async def test_a_message_past_the_context_is_refused_in_words_and_given_back(small_context):
    project, _workers = small_context
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        long = "the cat sat on the mat. " * 72  # 1,728 characters
        chat.query_one("#chat-input").value = long  # pasted
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.query(".chat-error"))
        error = " ".join(str(chat.query_one(".chat-error").render()).split())
        assert "prompt: 1728 tokens, but the model's context is 256 tokens" in error
        assert error.endswith("Your message is back in the input.")
        assert chat.query_one("#chat-input").value == long and chat.history == []
        assert not chat.query(".chat-user") and not chat.query(".chat-reply")
        await pilot.press("ctrl+u", *"the cat", "enter")  # shortened, it is answered
        await wait_for(pilot, lambda: len(chat.history) == 2, tries=600, delay=0.05)
        assert chat.history[0] == {"role": "user", "content": "the cat"}


async def test_a_bad_setting_is_named_with_its_rule_and_the_message_is_kept(chat_project):
    project, workers = chat_project
    app = app_on(project, project.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await show(pilot, "f5", ChatScreen)
        await pilot.press("shift+tab", "shift+tab", "shift+tab", "shift+tab", "ctrl+u", *"abc")
        assert chat.query_one("#chat-temperature").value == "abc"
        chat.query_one("#chat-input").focus()
        await pilot.press(*"hello there", "enter")
        status = " ".join(str(chat.query_one("#chat-status").render()).split())
        assert status == (
            "temp (temperature): must be >= 0 (0 is greedy), a finite number, got 'abc'. "
            "Fix it, then Enter sends the message."
        )
        assert chat.query_one("#chat-input").value == "hello there"  # not eaten
        assert not workers and chat.history == [] and not app._notifications
        await pilot.press("shift+tab", "shift+tab", "shift+tab", "shift+tab", "ctrl+u", *"0.5")
        chat.query_one("#chat-input").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(chat.history) == 2, tries=600, delay=0.05)
        assert workers[0].requests[0]["temperature"] == 0.5
