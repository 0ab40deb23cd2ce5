"""The chat screen: talk to any model directory of the open project.

The model runs in its own worker (engine/chat_worker.py), started at the first message and kept
until another model is picked. Chat mode sends the whole conversation through the tokenizer's chat
template; completion mode continues the typed text (base models). Replies stream into a Markdown
widget through its streaming API, in a scroll anchored to the bottom. Ctrl+G stops a reply while it
streams (the worker reads a `cancel` between tokens): the partial reply stays in the conversation,
marked as stopped.

Ctrl+T shows each finished reply as its tokens coloured by the probability the model gave them (the
worker's `token_probs`: the model's softmax before the sampling settings), with a cursor on the last
reply that ←/→ move and a line under the conversation with the cursor's token and its 5 likeliest
alternatives (widgets/token_probs.py); Tab goes to the input (the colours stay), Ctrl+T again shows
the text.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Footer, Input, Label, Markdown, Select, Static
from textual.widgets.markdown import MarkdownStream

from engine.project.sampling import sampling_problems
from engine.worker import start_chat
from llmlab_tui.messages import WorkerEvents, WorkerExited
from llmlab_tui.model_dirs import has_chat_template, model_dirs
from llmlab_tui.screens.base import ProjectScreen
from llmlab_tui.widgets.nav import NavBar
from llmlab_tui.widgets.ordered_input import OrderedInput
from llmlab_tui.widgets.pickers import ModelPicker
from llmlab_tui.widgets.token_probs import TokenProbs

JOB = "chat"
NO_REPLY_LINE = "no reply yet: each reply shows its token probabilities here"  # Ctrl+T's line
MODES = (("chat", "chat"), ("completion", "completion"))
# the settings row: request key, label, default, parser
SETTINGS = (
    ("temperature", "temp", "0.8", float),
    ("top_k", "top-k", "0", int),
    ("top_p", "top-p", "0.95", float),
    ("max_new_tokens", "max", "128", int),
)


class ChatScreen(ProjectScreen):
    BINDINGS = [
        Binding("ctrl+r", "regenerate", "Regenerate", id="chat.regenerate"),
        Binding("ctrl+l", "clear", "Clear", id="chat.clear"),
        Binding("ctrl+g", "stop_reply", "Stop reply", id="chat.stop_reply"),  # shown while a reply streams
        Binding("ctrl+t", "toggle_probs", "Token probs", id="chat.token_probs"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models = []
        self.history: list[dict] = []  # {"role", "content"}, the conversation sent to the model
        self.stream: MarkdownStream | None = None  # the reply being streamed, while it streams
        self.reply = ""  # its text so far
        self.loaded_dir: str | None = None  # the model directory the worker holds
        self.cursor_follows = False  # the next reply's view takes the cursor (regenerated from a view)

    def compose(self) -> ComposeResult:
        self.models = model_dirs(self.project) if self.project else []
        yield NavBar("chat", self.project.name if self.project else "no project")
        with Horizontal(id="chat-bar"):
            yield ModelPicker(
                [(m.title, str(m.path)) for m in self.models], "no model yet: run a stage first", "chat-model"
            )
            yield Select(MODES, value=self._default_mode(), allow_blank=False, compact=True, id="chat-mode")
        with Horizontal(id="chat-settings"):
            for key, label, default, _ in SETTINGS:
                yield Label(label, classes="setting-label")
                yield OrderedInput(default, compact=True, id=f"chat-{key}", classes="setting")
        yield VerticalScroll(id="chat-log", can_focus=False)
        yield Label("", id="chat-top")  # the token under the cursor and its alternatives (Ctrl+T)
        yield OrderedInput(placeholder="message, then Enter", compact=True, id="chat-input")
        yield Label("", id="chat-status")
        yield Footer()

    def on_screen_resume(self) -> None:
        """Checkpoints written since the last visit join the model list (the base class reloads the
        project itself when another one was opened)."""
        models = model_dirs(self.project) if self.project else []
        if self.project is None or models == self.models:
            return
        self.models = models
        self.query_one("#chat-model", ModelPicker).set_models([(m.title, str(m.path)) for m in models])

    def loaded(self) -> None:
        self.history, self.reply, self.stream = [], "", None
        self.query_one("#chat-log", VerticalScroll).anchor()
        self.query_one("#chat-input", Input).focus()
        self.set_status("pick a model, type, Enter" if self.models else "no model directory yet: run a stage (F4)")

    def focus_first_field(self) -> None:
        self.query_one("#chat-input", Input).focus()

    def action_focus_input(self) -> None:
        self.focus_first_field()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop reply is offered (and in the footer) only while a reply streams."""
        if action == "stop_reply":
            return self.stream is not None
        return super().check_action(action, parameters)

    def _default_mode(self) -> str:
        return "chat" if self.models and has_chat_template(self.models[0].path) else "completion"

    def set_status(self, text: str, severity: str = "") -> None:
        self.query_one("#chat-status", Label).update(Content.assemble((text, f"$text-{severity}" if severity else "")))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "chat-model" and event.value != Select.NULL:
            chat_mode = has_chat_template(Path(str(event.value)))
            self.query_one("#chat-mode", Select).value = "chat" if chat_mode else "completion"

    # -- sending -------------------------------------------------------------------------------------

    def settings(self) -> dict | None:
        """The sampling settings as typed, or None when one breaks its rule: then the status line
        names it and says the rule (it stays until the next send; what was typed is kept)."""
        values = {}
        for key, _, _, parse in SETTINGS:
            text = self.query_one(f"#chat-{key}", Input).value.strip()
            try:
                values[key] = parse(text)
            except ValueError:
                values[key] = text  # refused below, by its rule
        problems = sampling_problems(values)
        if problems:
            labels = {key: label for key, label, _, _ in SETTINGS}
            lines = [f"{labels[p.field]} ({p.field}): {p.message}" for p in problems]
            self.set_status("; ".join(lines) + ". Fix it, then Enter sends the message.", "error")
            return None
        return values

    def request(self, settings: dict) -> dict:
        """The generate request for the conversation so far."""
        chat = self.query_one("#chat-mode", Select).value == "chat"
        return {"type": "generate", "messages": list(self.history), "chat": chat, **settings}

    def worker(self):
        """The chat worker for the picked model, started if needed (None: no model picked)."""
        model = self.query_one("#chat-model", Select).value
        if model == Select.NULL:
            self.notify("No model to chat with: run a stage first (F4).", severity="warning")
            return None
        job = self.app.runner.running(JOB)
        if job is None or self.loaded_dir != model:
            self.loaded_dir = str(model)
            job = self.app.runner.start(JOB, start_chat(model), self)
            self.set_status(f"loading {model} …")
        return job

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "chat-input" or not event.value.strip():
            return
        if self.reply or self.stream is not None:
            self.notify("Wait for the reply to finish (Ctrl+G stops it).", severity="warning")
            return
        settings = self.settings()
        if settings is None:
            return  # the message stays in the input, the status line says what to fix
        self.history.append({"role": "user", "content": event.value})
        self.cursor_follows = False  # typing: the focus stays in the input
        event.input.value = ""
        await self.query_one("#chat-log").mount(Static(Content(event.value), classes="chat-user"))
        await self.send(settings)

    async def send(self, settings: dict | None = None) -> None:
        settings = settings or self.settings()
        job = self.worker() if settings is not None else None
        if job is None:
            return
        markdown = Markdown(classes="chat-reply")
        await self.query_one("#chat-log").mount(markdown)
        self.stream, self.reply = Markdown.get_stream(markdown), ""
        self.refresh_bindings()
        job.send(self.request(settings))

    def action_stop_reply(self) -> None:
        """Ask the worker to end the reply that streams; what came so far stays (see on_worker_events)."""
        job = self.app.runner.running(JOB)
        if self.stream is None or job is None:
            return
        job.send({"type": "cancel"})
        self.set_status("stopping the reply …")

    async def action_regenerate(self) -> None:
        if self.stream is not None or not self.history or self.history[-1]["role"] != "assistant":
            self.notify("Nothing to regenerate yet.", severity="warning")
            return
        self.cursor_follows = isinstance(self.focused, TokenProbs)
        self.history.pop()
        log = self.query_one("#chat-log")
        if log.children and log.children[-1].has_class("chat-stopped"):
            await log.children[-1].remove()  # the mark of the reply being replaced
        if self.query("#chat-log .chat-reply").last().has_class("scored"):
            await self.query("#chat-log .chat-probs").last().remove()  # its probability view
        await self.query("#chat-log .chat-reply").last().remove()
        await self.send()

    async def action_clear(self) -> None:
        await self._end_stream()
        self.history = []
        await self.query_one("#chat-log").remove_children()
        self.query_one("#chat-top", Label).update(NO_REPLY_LINE)

    # -- the worker's events ---------------------------------------------------------------------------

    async def on_worker_events(self, message: WorkerEvents) -> None:
        if message.job != JOB:
            return
        for event in message.of("started"):
            self.set_status(f"{event['model_dir']} · {event['parameters']:,} params on {event['device']}")
        text = "".join(event["text"] for event in message.of("token"))
        if text and self.stream is not None:
            self.reply += text
            await self.stream.write(text)
        for event in message.of("reply"):
            markdown = self.stream.markdown_widget if self.stream is not None else None
            await self._end_stream()
            self.history.append({"role": "assistant", "content": event["text"]})
            if markdown is not None and event.get("token_probs"):
                await self._mount_probs(markdown, event["token_probs"])
            status = f"{event['tokens']} tokens at {event['tokens_per_s']:.1f} tokens/s"
            if event.get("note"):  # e.g. max_new_tokens cut to what the model's context leaves
                status += f" · {event['note']}"
            if event.get("stopped"):
                status += " · stopped"
                if markdown is not None:
                    markdown.add_class("stopped")
                    note = Static(Content.assemble(("[stopped]", "$text-warning")), classes="chat-stopped")
                    await self.query_one("#chat-log").mount(note, after=markdown)
            self.set_status(status)
        for event in message.of("error"):
            await self._end_stream()
            note = " Your message is back in the input." if await self._take_back_unanswered() else ""
            log = self.query_one("#chat-log")
            await log.mount(Static(Content.assemble((event["message"] + note, "$text-error")), classes="chat-error"))
            self.set_status("error: see above")

    # -- token probabilities -------------------------------------------------------------------------

    async def _mount_probs(self, markdown: Markdown, rows: list[dict]) -> None:
        """The reply's probability view, before its Markdown; shown instead of it while Ctrl+T is on,
        its first token on the line. A reply regenerated from the view of the one it replaces takes
        the focus; one asked from the input leaves it there."""
        view = TokenProbs(rows, classes="chat-probs")
        await self.query_one("#chat-log").mount(view, before=markdown)
        markdown.add_class("scored")
        if self.has_class("probs"):  # replies shown as tokens coloured by probability (Ctrl+T)
            self.show_line(view)
            if self.cursor_follows:
                view.focus()

    def action_toggle_probs(self) -> None:
        self.toggle_class("probs")
        views = self.query("#chat-log .chat-probs")
        if not self.has_class("probs"):
            self.query_one("#chat-input", Input).focus()
        elif views:
            views.last().focus()
            self.show_line(views.last())
        else:
            self.query_one("#chat-top", Label).update(NO_REPLY_LINE)

    def show_line(self, view: TokenProbs) -> None:
        self.query_one("#chat-top", Label).update(view.line())
        view.scroll_visible(animate=False)

    def on_token_probs_moved(self, message: TokenProbs.Moved) -> None:
        self.query_one("#chat-top", Label).update(message.line)

    async def _take_back_unanswered(self) -> bool:
        """After a refused request (say a message longer than the model's context), the unanswered
        message leaves the conversation and goes back into the input, to be shortened and sent."""
        if not self.history or self.history[-1]["role"] != "user":
            return False
        text = self.history.pop()["content"]
        for selector in ("#chat-log .chat-reply", "#chat-log .chat-user"):
            widgets = self.query(selector)
            if widgets and (selector.endswith("user") or not widgets.last().source):
                await widgets.last().remove()
        field = self.query_one("#chat-input", Input)
        if not field.value:
            field.value = text
            field.cursor_position = len(text)  # at its end, to shorten it
        return True

    async def on_worker_exited(self, message: WorkerExited) -> None:
        if message.job == JOB:
            await self._end_stream()
            self.loaded_dir = None

    async def _end_stream(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        self.stream, self.reply = None, ""
        self.refresh_bindings()
