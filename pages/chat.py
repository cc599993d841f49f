"""The chat page (`/chat`): stored conversations, replies streamed as they are written.

Each tab's `ChatSession` is built in `init_state` (never shared). The conversation is kept in
the app's `ChatStore` through a `ChatLog`: the tab's chat is stored when its first message is
sent (the user message is committed before the model starts, the reply while it streams). The
chat list beside the chat opens, renames, deletes, exports and imports stored chats.

A reply runs in a worker thread that iterates the `SavedReply` and publishes the growing text
to that tab only, through its own event stream (`web/live.py`: not a page variable, because
every page-variable update re-renders the whole page in the browser). While the request waits
behind other tabs' requests, the tab shows its place in the queue.

The exchange being written is shown in its own elements (`live_question`, `live_text`), not
in the chat control: Taipy's chat control loads its rows in a second round trip after each
change notice, and a notice arriving just after such a load can leave it frozen on old rows for
good. So its list changes once per exchange, when the reply is done (the question and the
finished reply together), and is sent once more `SETTLE_S` later. Changing it at Enter as well
made the page fetch and re-render every row as Markdown before the first token could show
(20 rows at turn 10). Every update of any page variable re-renders the whole Taipy page in the
browser, so the page sends nothing it does not need to (the chat list only when it changed).

Documents (`llm.documents`, the collections made on the documents page): a chat may answer
from collections chosen above the conversation, remembered per chat (a new chat's choice is
stored with it at its first message). Each message then goes through `ask_with_documents`
(passages in the prompt, sources stored with the reply), or all of one document when the
user chose one that fits the context; the reply's row lists its sources
(`llm.documents.sources_text.sources_markdown`, from `Library.sources(message_id)`).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import taipy.gui.builder as tgb
from taipy.gui import Gui, State, download, get_state_id, invoke_callback, navigate, notify

from llm import chat_export
from llm.chat_log import ChatLog, SavedReply
from llm.config import LOCAL_BACKEND, SAMPLING_FIELDS, SamplingParams, sampling_field
from llm.documents import ask_with_documents, ask_with_whole_document, whole_document_budget
from llm.documents.sources_text import SourceWords, source_label, sources_markdown
from llm.errors import LocalChatError, NoModelError
from llm.figures import Figures, figures_line
from llm.markdown_text import close_open_fence
from llm.model_files import resolve_model
from llm.session import ChatSession, checked_system_prompt
from llm.storage import StoredChat, StoredMessage
from web.context import app
from web.live import LiveText, open_live
from web.per_tab import PerTab
from web.uploads import UploadError, take_upload

from . import model_actions, refresh

LIST_GAP_S = 0.4  # least time from Enter to the change of the chat rows (see the module doc)
SETTLE_S = 0.5  # when the rows are sent again after a reply ends
READY_WAIT_S = 30.0  # bound on a reply's wait for `send` to finish its page changes

# Page variables: module-level defaults that `init_state` replaces for every tab.
messages: list[list[str]] = []  # the chat control's rows: [id, markdown text, sender]
live_text = ""  # "…" or the queue position while a reply is under way ("" when none)
live_key = ""  # the key of the running reply's text stream (see web/live.py)
live_question = ""  # the message being answered, shown until the exchange joins the rows
draft = ""  # the message input
busy = False
has_model = False
model_line = ""
system_prompt = ""
# The generation settings: every sampling field the library gives an arrow-key step, each a
# page variable of its own name (temperature, top_p, ...) with the library's default.
_SETTINGS = tuple(
    (name, sampling_field(name).metadata["step"])
    for name in SAMPLING_FIELDS
    if sampling_field(name).metadata["step"]
)
globals().update({name: getattr(SamplingParams(), name) for name, _ in _SETTINGS})
# The stored chats.
chat_lov: list[tuple[str, str]] = []  # (chat id, title), the most recently active first
selected_chat = ""  # the open chat's id ("" before its first message)
chat_title = ""  # the title input
chat_model = ""  # the model the open chat was written with
chat_backend = ""  # where that model runs ("local" or a [[backends]] name)
offer_line = ""  # "this chat was written with ..." when that model is not the loaded one
offer_label = ""  # the button that loads it ("" when it is not in the models folder)
model_loading = False
confirm_delete = False  # the delete confirmation dialog is open
delete_question = ""
import_path = ""  # where Taipy wrote the uploaded JSON export (checked before use: see import)
# Documents: the collections this chat answers from (the server keeps the choice: _DocsChoice).
docs_lov: list[tuple[str, str]] = []  # (collection, label)
docs_chosen: list[str] = []
docs_title = ""  # the documents bar's title: "Documents: notes, pets"
whole_lov: list[tuple[str, str]] = []  # (NO_WHOLE or an index into _DocsChoice.offers, label)
whole_choice = "none"
# The sources of the open chat's last reply that used documents, each passage whole on click
# (until the conversation view shows them under the reply itself).
has_sources = False
src_title = ""
src_lov: list[tuple[str, str]] = []  # (index into _DocsChoice.sources, label)
src_choice = ""
src_passage = ""

_FRAME = inspect.currentframe()  # binds the page to this module's variables
_row_ids = itertools.count(1)


@dataclass
class _Tab:
    """What the server keeps for one tab (see web/per_tab.py): the objects a reply runs on
    and the facts that guard them, which page variables only show."""

    session: ChatSession
    chat_log: ChatLog | None = None  # None until the chat is stored
    cancel: threading.Event | None = None  # of the running reply (None: no reply runs)
    run_id: int = 0  # bumped when the tab leaves a chat: an abandoned reply's updates drop
    rows: list[list[str]] = field(default_factory=list)  # the chat control's rows

    @property
    def busy(self) -> bool:
        return self.cancel is not None


_tab = PerTab(lambda: _Tab(app().new_session()))


def _show_rows(state: State, rows: list[list[str]]) -> None:
    tab = _tab(state)
    tab.rows = rows
    state.messages = list(rows)  # a new list: Taipy shares a page variable's initial value


def _new_row(content: str, sender: str) -> list[str]:
    return [f"m{next(_row_ids)}", content, sender]


def init_state(state: State) -> None:
    """Give a new tab its own (not yet stored) conversation and the configured settings."""
    ctx = app()
    _tab.reset(state)
    state.messages = []
    state.live_text = ""
    state.live_key = ""
    state.live_question = ""
    state.draft = ""
    state.busy = False
    state.confirm_delete = False
    state.import_path = ""
    state.model_loading = False
    _show_settings(state, ctx.config.system_prompt, ctx.config.sampling)
    _show_chat_facts(state, None)
    refresh_model(state)
    _show_documents(state, None)


def _show_settings(state: State, prompt: str, params: SamplingParams) -> None:
    state.system_prompt = prompt
    for name, _ in _SETTINGS:
        setattr(state, name, getattr(params, name))


def _show_chat_facts(state: State, chat: StoredChat | None) -> None:
    state.selected_chat = str(chat.id) if chat else ""
    state.chat_title = chat.title if chat else ""
    state.chat_model = chat.model if chat else ""
    state.chat_backend = chat.backend if chat else ""


def refresh_model(state: State) -> None:
    """Redraw what other tabs may have changed: which model and chat format replies come from
    (and whether it is the one the open chat used), and the chat list."""
    _show_model(state)
    refresh_chats(state)


refresh.subscribe(refresh.MODELS, refresh_model)


def _tab_engine(state: State) -> Any:
    """The engine this tab's replies come from: a chat not stored yet goes where new chats go
    (the models page chooses); a stored one continues on its own backend."""
    tab = _tab(state)
    if tab.chat_log is None:
        tab.session.engine = app().engines.active
    return tab.session.engine


def _show_model(state: State) -> None:
    """Where this tab's replies come from, on the model line."""
    ctx = app()
    t = ctx.labels
    engine = _tab_engine(state)
    if engine.backend_name != LOCAL_BACKEND:  # a server: it connects on the next message
        state.has_model = True
        state.model_line = t["model_line_remote"].format(
            model=engine.model_name, backend=engine.backend_name
        )
    elif engine.loaded is None:
        state.has_model = False
        state.model_line = t["no_model"]
    else:
        state.has_model = True
        state.model_line = t["model_line"].format(
            model=engine.model_name, format=ctx.format_label()
        )
    _offer_chat_model(state)


def refresh_chats(state: State) -> None:
    """Show the store's current list of chats."""
    ctx = app()
    untitled = ctx.labels["untitled"]
    chats = [(str(c.id), c.title or untitled) for c in ctx.store.list_chats()]
    # Assigning sends the list to the page (and redraws the selector) even when nothing
    # changed, which is the usual case when a message is sent or a reply ends.
    if [tuple(row) for row in state.chat_lov or []] != chats:
        state.chat_lov = chats


def _offer_chat_model(state: State) -> None:
    """If the open chat was written with another model than the loaded one, offer to load it."""
    ctx = app()
    t = ctx.labels
    wanted = str(state.chat_model or "")
    backend = str(state.chat_backend or LOCAL_BACKEND)
    remote_here = backend != LOCAL_BACKEND and _tab(state).session.engine.backend_name == backend
    if not wanted or remote_here or ctx.engines.local.model_name == wanted:
        state.offer_line = state.offer_label = ""
        return
    if backend != LOCAL_BACKEND:  # its server is no longer in config.toml
        state.offer_line = t["chat_backend_missing"].format(model=wanted, backend=backend)
        state.offer_label = ""
        return
    try:
        resolve_model(wanted, ctx.config.models_dir, allow_paths=False)
    except LocalChatError:
        state.offer_line = t["chat_model_missing"].format(model=wanted)
        state.offer_label = ""
        return
    state.offer_line = t["chat_model_offer"].format(model=wanted)
    state.offer_label = t["load_chat_model"].format(model=wanted)


def _sampling_overrides(state: State) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, _ in _SETTINGS:
        kind = type(getattr(SamplingParams(), name))  # float or int
        value = getattr(state, name)
        try:
            values[name] = kind(value)
        except (TypeError, ValueError):
            raise LocalChatError(f"{app().labels[name]}: {value!r} is not a number") from None
    return values


def _typed_text(payload: Any, bound: Any) -> str:
    """The text an Enter handed over (the input's own change may not have arrived yet), else
    the bound value; a value that is not text (a client can send anything) counts as empty."""
    args = payload.get("args") if isinstance(payload, dict) else None
    given = args[2] if isinstance(args, list) and len(args) > 2 else None
    value = bound if given is None else given
    return value if isinstance(value, str) else ""


def send(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """Enter in the message input: store the message and stream the reply (an empty message
    does nothing)."""
    text = _typed_text(payload, state.draft)
    tab = _tab(state)
    if not text.strip() or tab.busy:
        return
    ctx = app()
    session = tab.session
    engine = _tab_engine(state)
    try:
        engine.prepare()  # a reopened chat's server: checks it still offers the model
    except NoModelError:
        notify(state, "warning", ctx.labels["no_model"])
        return
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        return
    stop_event = threading.Event()
    ready = threading.Event()  # set once this handler has made its page changes
    gui, state_id, run = state.get_gui(), get_state_id(state), tab.run_id

    def on_queue(position: int) -> None:  # called in the reply thread while waiting
        ready.wait(READY_WAIT_S)
        invoke_callback(gui, state_id, _show_queue, [run, position])

    log = tab.chat_log
    try:
        # The page's settings become the chat's (checked here: bad ones store nothing).
        session.params = session.params.replace(**_sampling_overrides(state))
        session.messages_for(text)  # a message the model cannot take stores nothing either
        session.system_prompt = checked_system_prompt(state.system_prompt)
        session.chat_format = ctx.engines.format_choice(engine)
        if log is None:
            log = ChatLog.start(ctx.store, session)
        reply = _ask(state, log, text, stop_event, on_queue)
    except LocalChatError as exc:  # bad settings or input, or the database: say so
        notify(state, "error", str(exc))
        return
    # The model starts on the prompt now, not after the page changes below: each Taipy
    # assignment is a websocket message and a re-render of the page in the browser. The
    # reply's callbacks wait for `ready`.
    live_key, live = open_live()
    worker = threading.Thread(
        target=_stream,
        args=(gui, state_id, reply, live, text, run, time.monotonic(), ready),
        name="reply-stream",
        daemon=True,
    )
    worker.start()
    tab.cancel = stop_event
    try:
        if tab.chat_log is None:
            tab.chat_log = log
            state.selected_chat = str(log.chat_id)
            state.chat_title = ctx.store.get_chat(log.chat_id).title
        # Assigning sends even an unchanged value to the page: only what changed.
        if state.chat_model != engine.model_name:
            state.chat_model = engine.model_name
        if state.chat_backend != engine.backend_name:
            state.chat_backend = engine.backend_name
        if state.offer_line or state.offer_label:
            state.offer_line = state.offer_label = ""
        refresh_chats(state)
        state.draft = ""
        state.live_question = text
        state.live_text = "…"
        state.live_key = live_key
        state.busy = True
    finally:
        ready.set()


def _stream(
    gui: Gui,
    state_id: str,
    reply: SavedReply,
    live: LiveText,
    question: str,
    run: int,
    asked_at: float,
    ready: threading.Event,
) -> None:
    """Worker thread: read the reply (which saves itself) and publish its text to the tab;
    the tab hears of its end once `send` has made its own changes (`ready`)."""
    error = ""
    try:
        for _ in reply:
            live.publish(reply.text)
    except Exception as exc:  # whatever happens, the tab must leave its busy state
        error = str(exc) or type(exc).__name__
    finally:
        live.publish(reply.text)
        live.end()
    # Pacing for the chat control, not for the reply: it is on screen already (live_text).
    time.sleep(max(0.0, asked_at + LIST_GAP_S - time.monotonic()))
    ready.wait(READY_WAIT_S)
    invoke_callback(gui, state_id, _finish, [run, reply, question, error])
    settle = threading.Timer(SETTLE_S, invoke_callback, args=(gui, state_id, _resend_rows))
    settle.daemon = True
    settle.start()


def _resend_rows(state: State) -> None:
    state.messages = list(_tab(state).rows)  # a lost change notice is made good


def _show_queue(state: State, run: int, position: int) -> None:
    # Sent from the reply thread before any text, so it never hides a reply being written.
    if _tab(state).run_id == run:
        state.live_text = app().labels["queued"].format(n=position)


def _footer(status: str, finish_reason: str, error: str, figures: Figures | None) -> str:
    """The line under a reply, live or stored: its figures, and how it ended if not as
    planned."""
    t = app().labels
    notes = [figures_line(figures, _figure_words(), prompt=False)] if figures else []
    if status == "failed":
        return t["error_reply"].format(error=error)
    if status == "stopped":
        notes.append(t["stopped"])
    elif status in ("interrupted", "streaming"):
        notes.append(t["interrupted"])
    elif finish_reason == "length":
        notes.append(t["cut_at_max_tokens"])
    return " · ".join(notes)


def _figure_words() -> dict[str, str]:
    t = app().labels
    return {key: t[f"fig_{key}"] for key in ("first_token", "tokens", "tokens_rate", "dropped")}


def _finish(state: State, run: int, reply: SavedReply, question: str, error: str) -> None:
    tab = _tab(state)
    if tab.run_id != run:
        return
    tab.cancel = None
    if reply.refused:
        _undo_send(state, question, error, chat_deleted=reply.chat_deleted)
        return
    t = app().labels
    status = "failed" if error else reply.status
    footer = _footer(status, reply.finish_reason, error, reply.figures)
    _show_rows(
        state,
        [
            *tab.rows,
            _new_row(question, t["you"]),
            _new_row(
                _reply_markdown(reply.text, footer, _last_reply_sources(state, reply.message_id)),
                t["assistant"],
            ),
        ],
    )
    state.live_question = ""
    state.live_text = ""
    state.live_key = ""
    state.busy = False
    refresh_chats(state)  # this chat is now the most recently active
    if error:
        notify(state, "error", error)


def _undo_send(state: State, question: str, error: str, *, chat_deleted: bool) -> None:
    """The model refused the message (too long for its context) and nothing of it was
    stored: give it back in the input to shorten."""
    state.draft = question
    state.live_question = ""
    state.live_text = ""
    state.live_key = ""
    state.busy = False
    if chat_deleted:  # the chat had been made for this message: back to a new, unsaved one
        _tab(state).chat_log = None
        _show_chat_facts(state, None)
    refresh_chats(state)
    notify(state, "error", error)


def _stored_row(message: StoredMessage) -> list[str]:
    """A chat control row for a stored message, with the same footer a live reply gets."""
    t = app().labels
    if message.role == "user":
        return _new_row(message.content, t["you"])
    footer = _footer(message.status, "", message.error, message.figures)
    return _new_row(
        _reply_markdown(message.content, footer, _sources_md(message.id)), t["assistant"]
    )


def _reply_markdown(text: str, footer: str, sources: str = "") -> str:
    """A reply bubble: the reply (a code block it left open is closed, so the footer is not
    shown as code), its sources if it used documents, then its footer line in italics."""
    body = close_open_fence(text) if text.strip() else app().labels["empty_reply"]
    if sources:
        body = f"{body}\n\n{sources}"
    return f"{body}\n\n*{footer}*" if footer else body


def stop(state: State) -> None:
    """Stop button: end the reply now (or leave the queue); what was written stays."""
    cancel = _tab(state).cancel
    if cancel is not None:
        cancel.set()


def _leave_chat(state: State) -> None:
    """Stop this tab's running reply (it is still saved, as stopped) and drop its updates."""
    tab = _tab(state)
    if tab.cancel is not None:
        tab.cancel.set()
    tab.cancel = None
    tab.run_id += 1
    state.live_question = ""
    state.live_text = ""
    state.live_key = ""
    state.busy = False


def new_chat(state: State) -> None:
    """New chat button: an empty conversation, stored when its first message is sent."""
    _leave_chat(state)
    tab = _tab(state)
    try:
        tab.session = app().new_session(checked_system_prompt(state.system_prompt))
    except LocalChatError as exc:  # a system prompt too long to keep
        notify(state, "error", str(exc))
        tab.session = app().new_session()
        state.system_prompt = tab.session.system_prompt
    tab.chat_log = None
    _show_rows(state, [])
    _show_chat_facts(state, None)
    refresh_model(state)
    _show_documents(state, None)


def _open(state: State, chat_id: int) -> None:
    ctx = app()
    log = ChatLog.resume(ctx.store, chat_id, ctx.engines)
    chat = log.chat
    _leave_chat(state)
    tab = _tab(state)
    tab.session = log.session
    tab.chat_log = log
    _show_rows(state, [_stored_row(m) for m in chat.messages])
    _show_settings(state, chat.system_prompt, log.session.params)
    _show_chat_facts(state, chat)
    _show_model(state)
    _show_documents(state, chat_id, chat.messages)


def open_selected(state: State, var_name: str, value: Any) -> None:
    """A click in the chat list: open that chat."""
    try:
        chat_id = int(value)
    except (TypeError, ValueError):
        return
    log = _tab(state).chat_log
    if log is not None and log.chat_id == chat_id:
        return
    try:
        _open(state, chat_id)
    except LocalChatError as exc:  # deleted in another tab meanwhile
        notify(state, "error", str(exc))
        refresh_chats(state)


def rename(state: State, var_name: str = "", payload: dict[str, Any] | None = None) -> None:
    """Rename button (or Enter in the title): give the open chat the typed title."""
    ctx = app()
    log = _tab(state).chat_log
    if log is None:
        notify(state, "warning", ctx.labels["nothing_to_export"])
        return
    # Enter hands over the input's text (its own change may not have arrived yet).
    title = _typed_text(payload, state.chat_title)
    try:
        ctx.store.rename_chat(log.chat_id, title)
        title = ctx.store.get_chat(log.chat_id).title
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        return
    state.chat_title = title
    notify(state, "success", ctx.labels["renamed"].format(title=title))
    refresh_chats(state)


def ask_delete(state: State) -> None:
    """Delete button: ask first."""
    if _tab(state).chat_log is None:
        notify(state, "warning", app().labels["nothing_to_export"])
        return
    state.delete_question = app().labels["delete_question"].format(title=state.chat_title)
    state.confirm_delete = True


def delete_answer(state: State, var_name: str, payload: dict[str, Any]) -> None:
    """The confirmation dialog: button 0 deletes; the other button or closing keeps."""
    state.confirm_delete = False
    args = payload.get("args") if isinstance(payload, dict) else None
    log = _tab(state).chat_log
    if not isinstance(args, list) or not args or args[0] != 0 or log is None:
        return
    ctx = app()
    title = _typed_text(None, state.chat_title)  # as the question named it
    _leave_chat(state)
    with contextlib.suppress(LocalChatError):  # already deleted in another tab: same result
        ctx.store.delete_chat(log.chat_id)
    new_chat(state)
    notify(state, "success", ctx.labels["deleted"].format(title=title))


def _file_name(chat_id: int, title: str, suffix: str) -> str:
    words = re.sub(r"[^\w-]+", "-", title, flags=re.UNICODE).strip("-")
    return f"chat-{chat_id}{'-' + words[:50] if words else ''}.{suffix}"


def _export(state: State, suffix: str) -> None:
    ctx = app()
    log = _tab(state).chat_log
    if log is None:
        notify(state, "warning", ctx.labels["nothing_to_export"])
        return
    try:
        chat = ctx.store.get_chat(log.chat_id)
        text = (
            chat_export.chat_to_markdown(chat) if suffix == "md" else chat_export.chat_to_json(chat)
        )
    except LocalChatError as exc:
        notify(state, "error", str(exc))
        return
    download(state, content=text.encode("utf-8"), name=_file_name(log.chat_id, chat.title, suffix))


def export_markdown(state: State) -> None:
    """Export Markdown button: download the open chat as a Markdown document."""
    _export(state, "md")


def export_json(state: State) -> None:
    """Export JSON button: download the open chat as JSON (which Import reads back)."""
    _export(state, "json")


def import_chat(state: State) -> None:
    """A JSON export was uploaded: store it as a new chat and open it.

    The path comes from a page variable, which any client can set: only a file this tab's
    own upload wrote into the app's uploads folder is read (and then deleted)."""
    ctx = app()
    try:
        name, data = take_upload(get_state_id(state) or "", state.import_path)
    except UploadError as exc:
        notify(state, "error", str(exc))
        return
    try:
        chat_id = chat_export.import_chat(ctx.store, data)
        _open(state, chat_id)
    except LocalChatError as exc:  # not a valid export: nothing was stored
        notify(state, "error", f"{name}: {exc}")
        return
    refresh_chats(state)
    notify(state, "success", ctx.labels["imported"].format(title=state.chat_title))


def load_chat_model(state: State) -> None:
    """The offer's button: load the model the open chat was written with, in a thread."""
    name = str(state.chat_model or "")
    if state.model_loading or not name:
        return
    if model_actions.load_model(state, name, _load_done):
        state.model_loading = True


def _load_done(state: State, name: str, error: str) -> None:
    state.model_loading = False


def open_models(state: State) -> None:
    navigate(state, "models")


def build_page() -> tgb.Page:
    """The chat page, labelled in the configured language."""
    ctx = app()
    t = ctx.labels
    users = [(t["you"], t["you"]), (t["assistant"], t["assistant"])]
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.layout("240px 1fr 300px", columns__mobile="1", class_name="lc-chat-layout"),
    ):
        _chat_list(t)
        with tgb.part(class_name="lc-chat-main"):
            with tgb.layout("1fr auto auto", class_name="lc-chat-bar"):
                with tgb.part(class_name="lc-model-bar"):
                    with tgb.part(id="model_line"):  # markdown text drops its own id
                        tgb.text("{model_line}", mode="md")
                    with tgb.part(render="{not has_model}"):
                        tgb.button(t["open_models"], id="open_models", on_action=open_models)
                        tgb.part(page="first_model")
                    with tgb.part(render="{offer_line != ''}", id="chat_model_offer"):
                        tgb.text("{offer_line}", mode="md")
                        with tgb.part(render="{offer_label != ''}"):
                            tgb.button(
                                "{offer_label}",
                                id="load_chat_model",
                                on_action=load_chat_model,
                                active="{not model_loading and not busy}",
                            )
                tgb.button(t["stop"], id="stop", on_action=stop, active="{busy}")
                tgb.button(t["new_chat"], id="new_chat", on_action=new_chat)
            _documents_bar(t)
            _sources_panel(t)
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
                with tgb.part(
                    render="{live_question != ''}",
                    id="live_question",
                    class_name="lc-live-question",
                ):
                    tgb.text("{live_question}", mode="md")
                with tgb.part(render="{live_text != ''}", id="live_reply", class_name="lc-live"):
                    with tgb.part(class_name="lc-live-status"):
                        tgb.text("{live_text}", mode="md")
                    # Filled by web/live.py's script, never by a page variable.
                    tgb.part(id="live_stream", class_name="lc-live-stream")
                tgb.text("{live_key}", id="live_key", class_name="lc-hidden")
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
        _settings_column(t)
    return page


def _settings_column(t: Any) -> None:
    """The right column: the system prompt and the generation settings."""
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


def _chat_list(t: Any) -> None:
    """The left column: the stored chats, and what can be done with the open one."""
    with tgb.part(class_name="lc-chat-list"):
        tgb.text(t["chats"], class_name="h6")
        tgb.selector(
            "{selected_chat}",
            lov="{chat_lov}",
            value_by_id=True,
            on_change=open_selected,
            id="chat_list",
            height="45vh",
            class_name="fullwidth",
        )
        with tgb.part(render="{selected_chat != ''}", id="chat_actions"):
            tgb.input(
                "{chat_title}",
                label=t["chat_title"],
                id="chat_title",
                on_action=rename,
                class_name="fullwidth",
            )
            tgb.button(t["rename"], id="rename_chat", on_action=rename)
            tgb.button(t["delete_chat"], id="delete_chat", on_action=ask_delete)
            tgb.button(t["export_md"], id="export_md", on_action=export_markdown)
            tgb.button(t["export_json"], id="export_json", on_action=export_json)
        tgb.file_selector(
            "{import_path}",
            label=t["import_json"],
            extensions=".json",
            on_action=import_chat,
            notify=False,  # the import says how it went ("Uploaded" would precede a refusal)
            id="import_json",
            drop_message=t["import_json"],
        )
        with tgb.dialog(
            "{confirm_delete}",
            title=t["delete_title"],
            labels=f"{t['delete']};{t['keep']}",
            on_action=delete_answer,
            id="delete_dialog",
        ):
            tgb.text("{delete_question}")


# --- documents: the collections a chat answers from --------------------------------------------
MAX_WHOLE_OFFERS = 30  # documents measured and offered whole at once
NO_WHOLE = "none"  # the whole-document choice that uses passages (a selector shows no "")


@dataclass
class _DocsChoice:
    """What the server keeps of a tab's documents choice (the bound variables only show it)."""

    collections: list[str] = field(default_factory=list)
    saved_for: int | None = None  # the stored chat the choice was saved for
    offers: list[tuple[str, str]] = field(default_factory=list)  # (collection, file path)
    whole: tuple[str, str] | None = None  # the document used whole, if one is chosen
    sources: list[dict[str, Any]] = field(default_factory=list)  # of the last reply with some


_docs = PerTab(_DocsChoice)


def _collection_names() -> tuple[list[str], list[str]]:
    """Every collection, and those with indexed files (the ones offered)."""
    with contextlib.suppress(LocalChatError):
        infos = app().library.collections()
        return [c.name for c in infos], [c.name for c in infos if c.files_indexed]
    return [], []


def _show_documents(
    state: State, chat_id: int | None, messages: Sequence[StoredMessage] = ()
) -> None:
    """The open chat's collections (a new chat: none yet), the documents on offer and the
    sources of its last reply that had some."""
    choice = _docs.reset(state)
    if chat_id is not None:
        with contextlib.suppress(LocalChatError):
            choice.collections = app().library.chat_collections(chat_id)
        choice.saved_for = chat_id
    sources: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.role == "assistant":
            with contextlib.suppress(LocalChatError):
                sources = app().library.sources(message.id)
            if sources:
                break
    _show_sources(state, sources)
    refresh_documents(state)


def refresh_documents(state: State) -> None:
    """Show the collections there are (some were made, removed or indexed) and this tab's
    choice among them."""
    choice = _docs(state)
    names, indexed = _collection_names()
    choice.collections = [n for n in choice.collections if n in names]  # removed ones go
    lov = [(n, n) for n in dict.fromkeys([*indexed, *choice.collections])]
    if [tuple(row) for row in state.docs_lov or []] != lov:
        state.docs_lov = lov
    if list(state.docs_chosen or []) != choice.collections:
        state.docs_chosen = list(choice.collections)
    t = app().labels
    title = (
        t["docs_bar_chosen"].format(names=", ".join(choice.collections))
        if choice.collections
        else t["docs_bar"]
    )
    if state.docs_title != title:
        state.docs_title = title
    _offer_whole(state)


refresh.subscribe(refresh.DOCUMENTS, refresh_documents)


def _offer_whole(state: State) -> None:
    """Offer the chosen collections' documents that fit the context whole (the smallest
    first, at most MAX_WHOLE_OFFERS of them, each measured from its stored text)."""
    choice = _docs(state)
    ctx = app()
    budget = _whole_budget(state) if choice.collections else 0
    candidates = []
    for name in choice.collections:
        with contextlib.suppress(LocalChatError):
            candidates += [
                (record.chunk_count, name, record.path)
                for record in ctx.library.files(name)
                if record.status == "indexed" and 0 < record.chunk_count <= budget
            ]
    offers: list[tuple[str, str]] = []
    labels = [(NO_WHOLE, ctx.labels["docs_whole_none"])]
    for _, name, path in sorted(candidates)[:MAX_WHOLE_OFFERS]:
        document = None
        with contextlib.suppress(LocalChatError):
            document = ctx.library.whole_document(name, path)
        if document is not None and document.fits(budget):
            offers.append((name, path))
            labels.append((str(len(offers) - 1), f"{path.rsplit('/', 1)[-1]} · {name}"))
    choice.offers = offers
    if choice.whole not in choice.offers:
        choice.whole = None
    shown = str(choice.offers.index(choice.whole)) if choice.whole else NO_WHOLE
    if [tuple(row) for row in state.whole_lov or []] != labels:
        state.whole_lov = labels
    if state.whole_choice != shown:
        state.whole_choice = shown


def _whole_budget(state: State) -> int:
    """Tokens a whole document may take in this tab's chat now (0 when none can)."""
    try:
        return whole_document_budget(_tab(state).session)
    except LocalChatError:  # e.g. a system prompt the model cannot take
        return 0


def choose_documents(state: State, var_name: str, value: Any) -> None:
    """The collections selector: answer from these (remembered with a stored chat)."""
    ctx = app()
    names, _ = _collection_names()
    chosen = value if isinstance(value, list) else []
    choice = _docs(state)
    texts = [n for n in chosen if isinstance(n, str)]  # a client can send anything
    choice.collections = [n for n in dict.fromkeys(texts) if n in names]
    log = _tab(state).chat_log
    if log is not None:
        try:
            ctx.library.set_chat_collections(log.chat_id, choice.collections)
            choice.saved_for = log.chat_id
        except LocalChatError as exc:
            notify(state, "error", str(exc))
    refresh_documents(state)


def choose_whole(state: State, var_name: str, value: Any) -> None:
    """The whole-document selector: use all of one document (it must fit the context)."""
    choice = _docs(state)
    # An offer's index as the selector sent it; anything else (a client can send anything,
    # "-1" included) is no offer.
    index = int(value) if isinstance(value, str) and value.isdecimal() and len(value) < 6 else -1
    offer = choice.offers[index] if 0 <= index < len(choice.offers) else None
    choice.whole = None
    if offer is not None:
        ctx = app()
        document = None
        with contextlib.suppress(LocalChatError):
            document = ctx.library.whole_document(*offer)
        budget = _whole_budget(state)
        if document is None or not document.fits(budget):
            tokens = document.tokens if document else 0
            notify(
                state,
                "error",
                ctx.labels["docs_whole_too_big"].format(
                    file=offer[1].rsplit("/", 1)[-1], tokens=tokens, budget=budget
                ),
            )
        else:
            choice.whole = offer
    _offer_whole(state)


def _ask(
    state: State, log: ChatLog, text: str, cancel: threading.Event, on_queue: Any
) -> SavedReply:
    """`send`'s request: with the chosen collections' passages (or the whole document chosen)
    when there are any; a new chat's choice is stored with it here."""
    choice = _docs(state)
    ctx = app()
    if not choice.collections:
        return log.ask(text, cancel=cancel, on_queue=on_queue)
    if choice.saved_for != log.chat_id:
        ctx.library.set_chat_collections(log.chat_id, choice.collections)
        choice.saved_for = log.chat_id
    if choice.whole is not None:
        reply, _ = ask_with_whole_document(
            log, ctx.library, text, *choice.whole, cancel=cancel, on_queue=on_queue
        )
        return reply
    reply, context = ask_with_documents(
        log, ctx.library, text, choice.collections, cancel=cancel, on_queue=on_queue
    )
    if context.nothing_relevant:
        notify(state, "info", ctx.labels["docs_nothing_relevant"])
    return reply


def _source_words() -> SourceWords:
    t = app().labels
    return SourceWords(t["docs_sources"], t["docs_source_page"], t["docs_source_section"])


def _sources_md(message_id: int | None) -> str:
    """The Markdown list of a reply's sources ("" when it used none)."""
    if message_id is None:
        return ""
    try:
        sources = app().library.sources(message_id)
    except LocalChatError:
        return ""
    return sources_markdown(sources, _source_words())


def _last_reply_sources(state: State, message_id: int | None) -> str:
    """The Markdown of a reply that just ended; its sources become the ones shown whole."""
    sources: list[dict[str, Any]] = []
    if message_id is not None:
        with contextlib.suppress(LocalChatError):
            sources = app().library.sources(message_id)
    if sources:
        _show_sources(state, sources)
    return sources_markdown(sources, _source_words())


def _show_sources(state: State, sources: list[dict[str, Any]]) -> None:
    _docs(state).sources = sources
    words = _source_words()
    lov = [(str(i), f"{i + 1}. {source_label(s, words)}") for i, s in enumerate(sources)]
    if state.has_sources != bool(sources):
        state.has_sources = bool(sources)
    state.src_title = app().labels["docs_passages_title"].format(n=len(sources))
    state.src_lov = lov
    state.src_choice = lov[0][0] if lov else ""
    state.src_passage = str(sources[0].get("text") or "") if sources else ""


def show_passage(state: State, var_name: str, value: Any) -> None:
    """A click on a source: its passage, whole."""
    sources = _docs(state).sources
    index = int(value) if isinstance(value, str) and value.isdecimal() and len(value) < 4 else -1
    if 0 <= index < len(sources):
        state.src_passage = str(sources[index].get("text") or "")


def _sources_panel(t: Any) -> None:
    """The last reply's sources, each passage shown whole when clicked."""
    with (
        tgb.part(render="{has_sources}", id="sources_panel"),
        tgb.expandable(title="{src_title}", expanded=False, id="sources_bar"),
        tgb.layout("minmax(200px, 1fr) 2fr", columns__mobile="1", class_name="lc-docs-bar"),
    ):
        tgb.selector(
            "{src_choice}",
            lov="{src_lov}",
            value_by_id=True,
            on_change=show_passage,
            id="src_list",
            class_name="fullwidth",
        )
        tgb.text("{src_passage}", id="src_passage", class_name="lc-passage")


def _documents_bar(t: Any) -> None:
    """Above the conversation: the collections this chat answers from, and whole-document
    mode."""
    with (
        tgb.expandable(title="{docs_title}", expanded=False, id="docs_bar"),
        tgb.layout("1fr 1fr", columns__mobile="1", class_name="lc-docs-bar"),
    ):
        tgb.selector(
            "{docs_chosen}",
            lov="{docs_lov}",
            value_by_id=True,
            multiple=True,
            dropdown=True,
            label=t["docs_use"],
            on_change=choose_documents,
            id="docs_chosen",
            class_name="fullwidth",
        )
        tgb.selector(
            "{whole_choice}",
            lov="{whole_lov}",
            value_by_id=True,
            dropdown=True,
            label=t["docs_whole"],
            on_change=choose_whole,
            id="whole_choice",
            class_name="fullwidth",
        )
