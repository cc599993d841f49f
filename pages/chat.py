"""The chat page (`/chat`): one conversation per browser tab, replies streamed as they are written.

Each tab's `ChatSession` is built in `init_state` (never shared). A reply runs in a worker thread
that iterates the `Reply` and pushes the growing text to that tab only, through
`invoke_callback`, at most `UPDATES_PER_SECOND` times a second.

The reply being written is shown in its own element (`live_text`), not in the chat control:
Taipy's chat control loads its rows in a second round trip after each change notice, and a
notice arriving just after such a load can leave it frozen on old rows for good. So its list
changes only twice per exchange (the question, then the finished reply), at least
`LIST_GAP_S` apart, and is sent once more when the reply is done.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import time
from typing import Any

import taipy.gui.builder as tgb
from taipy.gui import Gui, State, get_state_id, invoke_callback, navigate, notify

from llm.errors import LocalChatError
from llm.session import Reply

from .context import app

UPDATES_PER_SECOND = 10
LIST_GAP_S = 0.4  # least time between two changes of the chat rows (see the module doc)
SETTLE_S = 0.5  # when the rows are sent again after a reply ends

# Page variables: module-level defaults that `init_state` replaces for every tab.
messages: list[list[str]] = []  # the chat control's rows: [id, markdown text, sender]
live_text = ""  # the reply being written ("" when none)
draft = ""  # the message input
busy = False
has_model = False
model_line = ""
system_prompt = ""
temperature = 0.7
top_p = 0.95
top_k = 40
repeat_penalty = 1.1
max_tokens = 512
session: Any = None  # this tab's ChatSession
cancel: Any = None  # threading.Event of the running reply
run_id = 0  # bumped by New chat, so updates from an abandoned reply are dropped

_FRAME = inspect.currentframe()  # binds the page to this module's variables
_row_ids = itertools.count(1)


def _new_row(content: str, sender: str) -> list[str]:
    return [f"m{next(_row_ids)}", content, sender]


def init_state(state: State) -> None:
    """Give a new tab its own conversation and the configured settings."""
    ctx = app()
    sampling = ctx.config.sampling
    state.session = ctx.new_session()
    state.cancel = None
    state.messages = []
    state.live_text = ""
    state.draft = ""
    state.busy = False
    state.system_prompt = ctx.config.system_prompt
    state.temperature = sampling.temperature
    state.top_p = sampling.top_p
    state.top_k = sampling.top_k
    state.repeat_penalty = sampling.repeat_penalty
    state.max_tokens = sampling.max_tokens
    refresh_model(state)


def refresh_model(state: State) -> None:
    """Show which model and chat format replies come from (they change on the models page)."""
    ctx = app()
    t = ctx.labels
    loaded = ctx.engine.loaded
    state.has_model = loaded is not None
    if loaded is None:
        state.model_line = t["no_model"]
    else:
        name = loaded.info.file_name
        state.model_line = t["model_line"].format(model=name, format=ctx.format_label(name))


def _sampling_overrides(state: State) -> dict[str, Any]:
    fields = {
        "temperature": float,
        "top_p": float,
        "top_k": int,
        "repeat_penalty": float,
        "max_tokens": int,
    }
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        value = getattr(state, name)
        try:
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise LocalChatError(f"{app().labels[name]}: {value!r} is not a number") from None
    return values


def send(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """Enter in the message input: start streaming a reply (an empty message does nothing)."""
    args = payload.get("args") or []
    text = str(args[2] if len(args) > 2 and args[2] is not None else state.draft or "")
    if not text.strip() or state.busy:
        return
    ctx = app()
    loaded = ctx.engine.loaded
    if loaded is None:
        notify(state, "warning", ctx.labels["no_model"])
        return
    session = state.session
    session.system_prompt = str(state.system_prompt or "")
    session.chat_format = ctx.format_choice(loaded.info.file_name)
    stop_event = threading.Event()
    try:
        reply = session.ask(text, cancel=stop_event, **_sampling_overrides(state))
    except LocalChatError as exc:  # bad settings: nothing is sent, nothing changes
        notify(state, "error", str(exc))
        return
    state.draft = ""
    state.messages = [*state.messages, _new_row(text, ctx.labels["you"])]
    state.live_text = "…"
    state.cancel = stop_event
    state.busy = True
    worker = threading.Thread(
        target=_stream,
        args=(state.get_gui(), get_state_id(state), reply, state.run_id, time.monotonic()),
        name="reply-stream",
        daemon=True,
    )
    worker.start()


def _stream(gui: Gui, state_id: str, reply: Reply, run: int, asked_at: float) -> None:
    """Worker thread: read the reply and push its text to the tab, throttled."""
    interval = 1.0 / UPDATES_PER_SECOND
    last_push = 0.0
    error = ""
    try:
        for _ in reply:
            now = time.monotonic()
            if now - last_push >= interval:
                last_push = now
                invoke_callback(gui, state_id, _show_text, [run, reply.text])
    except Exception as exc:  # whatever happens, the tab must leave its busy state
        error = str(exc) or type(exc).__name__
    # Pacing for the chat control, not for the reply: it is on screen already (live_text).
    time.sleep(max(0.0, asked_at + LIST_GAP_S - time.monotonic()))
    invoke_callback(gui, state_id, _finish, [run, reply, error])
    settle = threading.Timer(SETTLE_S, invoke_callback, args=(gui, state_id, _resend_rows))
    settle.daemon = True
    settle.start()


def _resend_rows(state: State) -> None:
    state.messages = list(state.messages)  # a lost change notice is made good


def _show_text(state: State, run: int, text: str) -> None:
    if state.run_id == run:
        state.live_text = text or "…"


def _finish(state: State, run: int, reply: Reply, error: str) -> None:
    if state.run_id != run:
        return
    t = app().labels
    figures = reply.figures
    notes = [
        t["figures"].format(
            tokens=figures.completion_tokens,
            ttft=figures.time_to_first_token_s,
            tps=figures.tokens_per_second,
        )
    ]
    if reply.finish_reason == "cancelled":
        notes.append(t["stopped"])
    elif reply.finish_reason == "length":
        notes.append(t["cut_at_max_tokens"])
    if figures.dropped_turns:
        notes.append(t["dropped_turns"].format(n=figures.dropped_turns))
    body = reply.text if reply.text.strip() else t["empty_reply"]
    footer = t["error_reply"].format(error=error) if error else " · ".join(notes)
    state.messages = [*state.messages, _new_row(f"{body}\n\n*{footer}*", t["assistant"])]
    state.live_text = ""
    state.busy = False
    state.cancel = None
    if error:
        notify(state, "error", error)


def stop(state: State) -> None:
    """Stop button: end the reply now; what was written stays."""
    if state.cancel is not None:
        state.cancel.set()


def new_chat(state: State) -> None:
    """New chat button: forget this tab's conversation (stopping a running reply)."""
    if state.cancel is not None:
        state.cancel.set()
    state.run_id += 1
    state.session = app().new_session(str(state.system_prompt or ""))
    state.messages = []
    state.live_text = ""
    state.busy = False
    state.cancel = None


def open_models(state: State) -> None:
    navigate(state, "models")


def build_page() -> tgb.Page:
    """The chat page, labelled in the configured language."""
    ctx = app()
    t = ctx.labels
    users = [(t["you"], t["you"]), (t["assistant"], t["assistant"])]
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.layout("1fr 300px", columns__mobile="1", class_name="lc-chat-layout"),
    ):
        with tgb.part(class_name="lc-chat-main"):
            with tgb.layout("1fr auto auto", class_name="lc-chat-bar"):
                with tgb.part(class_name="lc-model-bar"):
                    with tgb.part(id="model_line"):  # markdown text drops its own id
                        tgb.text("{model_line}", mode="md")
                    with tgb.part(render="{not has_model}"):
                        tgb.button(t["open_models"], id="open_models", on_action=open_models)
                tgb.button(t["stop"], id="stop", on_action=stop, active="{busy}")
                tgb.button(t["new_chat"], id="new_chat", on_action=new_chat)
            with tgb.part(class_name="lc-conversation"):
                tgb.chat(
                    "{messages}",
                    id="chat",
                    users=users,
                    sender_id=t["you"],
                    with_input=False,
                    mode="markdown",
                    class_name="lc-chat",
                )
                with tgb.part(render="{live_text != ''}", id="live_reply", class_name="lc-live"):
                    tgb.text("{live_text}", mode="md")
            # Enter sends, Shift+Enter starts a new line.
            tgb.input(
                "{draft}",
                id="message",
                label=t["message_hint"],
                multiline=True,
                lines_shown=1,
                on_action=send,
                active="{not busy}",
                class_name="fullwidth lc-message",
            )
        with tgb.part(class_name="lc-sidebar"):
            tgb.input(
                "{system_prompt}",
                label=t["system_prompt"],
                multiline=True,
                lines_shown=5,
                id="system_prompt",
                class_name="fullwidth",
            )
            with tgb.expandable(title=t["settings"], expanded=False, id="settings"):
                # No min/max here: Taipy would silently keep the old value; the
                # library's check names the setting and its range instead.
                for name, step in _SETTINGS:
                    tgb.number(
                        "{" + name + "}",
                        label=t[name],
                        step=step,
                        id=name,
                        class_name="fullwidth",
                    )
    return page


# Generation settings on the page: variable and arrow-key step.
_SETTINGS = (
    ("temperature", 0.05),
    ("top_p", 0.05),
    ("top_k", 1),
    ("repeat_penalty", 0.05),
    ("max_tokens", 64),
)
