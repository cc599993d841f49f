"""The chat page (`/chat`): stored conversations, replies streamed as they are written, and
what people do with a conversation: edit, regenerate, switch versions, continue, copy, delete,
search, pin.

Each tab's `ChatSession` is built in `init_state` (never shared). The conversation is kept in
the app's `ChatStore` through a `ChatLog`: the tab's chat is stored when its first message is
sent (the user message is committed before the model starts, the reply while it streams). The
chat list beside the chat (`web/static/chat-list.js`, sent `pages/chat_list.py`'s JSON) opens,
renames, pins, exports and deletes any stored chat from its menu (`_chat_act`), and imports
one; what each came to is said in the list, not in a toast.

The conversation is not a Taipy control: `web/static/conversation.js` draws the visible branch
(pages/conversation.py says what it is sent) and hears of changes and of the reply being
written over its tab's own event stream (web/chat_view.py), because every update of a page
variable re-renders the whole Taipy page in the browser. Its buttons post actions that run
here, in the tab's state (`_act`), through the same path as Enter (`_start_reply`). Page
variables change only where Taipy's own controls need it: the input and Stop (`busy`), the
settings, and the counters telling the components to fetch again (`view_version`,
`list_version`).

A reply runs in a worker thread that iterates the `SavedReply` and publishes the growing text
to the tab's view; while the request waits behind other tabs' requests, the view shows its
place in the queue.

Documents (`llm.documents`, the collections made on the documents page): a chat may answer
from collections chosen above the conversation, remembered per chat (a new chat's choice is
stored with it at its first message). Each message (an edit and a regenerated reply too) then
goes through `ask_with_documents` (passages in the prompt, sources stored with the reply), or
all of one document when the user chose one that fits the context; the conversation shows a
reply's sources under it (`Library.sources(message_id)`).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import taipy.gui.builder as tgb
from taipy.gui import (
    Gui,
    State,
    download,
    get_state_id,
    invoke_callback,
    navigate,
    notify,
)

from llm import chat_export
from llm.chat_log import ChatLog, SavedReply
from llm.config import LOCAL_BACKEND, SAMPLING_FIELDS, SamplingParams, sampling_field
from llm.documents import ask_with_documents, ask_with_whole_document, whole_document_budget
from llm.documents.sources_text import SourceWords, source_label
from llm.errors import LocalChatError
from llm.model_files import resolve_model
from llm.prompts import template_system_prompt
from llm.session import ChatSession, checked_system_prompt
from llm.storage import StoredChat
from web.chat_view import CHAT_ACTIONS, ChatView, ViewAction, open_view
from web.context import app, in_background
from web.live import LiveText, open_live
from web.per_tab import PerTab
from web.uploads import UploadError, take_upload

from . import chat_list, conversation, model_actions, model_picker, model_settings, refresh
from .wording import error_text

READY_WAIT_S = 30.0  # bound on a reply's wait for `send` to finish its page changes

# Page variables: module-level defaults that `init_state` replaces for every tab.
view_key = ""  # the tab's conversation view (web/chat_view.py), set once per tab
view_version = 0  # bumped when the conversation changed: the component fetches it again
list_version = 0  # bumped when the chat list (or its notice) changed: chat-list.js fetches it
reply_status = ""  # "waiting — N ahead" while the reply waits its turn ("" otherwise)
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
settings_error = ""  # what is wrong with a setting, under the settings (in the tab's language)
settings_note = ""  # e.g. "new chats start with this system prompt"
prompt_hint = ""  # the system prompt the model's template adds when the chat has none
prompt_hint_key = ""  # the model and format whose template's prompt is being looked for
prompt_example = ""  # the example prompts' selector (always shown empty)
chat_error = ""  # why the last message was not sent or answered, above the input
PROMPT_EXAMPLES = ("geography", "concise")  # labels preset_<name> and preset_<name>_text
chat_model = ""  # the model the open chat was written with
chat_backend = ""  # where that model runs ("local" or a [[backends]] name)
offer_line = ""  # "this chat was written with ..." when that model is not the loaded one
offer_label = ""  # the button that loads it ("" when it is not in the models folder)
model_loading = False
# The chat bar's model picker (pages/model_picker.py): the models folder's files, then each
# server's models; choosing one loads it (or switches to the server) for this tab's chat.
model_choice = ""  # the value of the model this tab's replies come from ("" when none)
model_choices: list[tuple[str, str]] = []  # (value, label), group headers included
backends_line = ""  # which servers cannot be reached, under the picker
loading_line = ""  # "Loading X…" while the picker's choice loads
# The model settings panel (context length and threads of the local model in use).
globals().update(model_settings.PANEL_DEFAULTS)
import_path = ""  # where Taipy wrote the uploaded JSON export (checked before use: see import)
# Documents: the collections this chat answers from (the server keeps the choice: _DocsChoice).
docs_lov: list[tuple[str, str]] = []  # (collection, label)
docs_chosen: list[str] = []
docs_title = ""  # the documents bar's title: "Documents: notes, pets"
whole_lov: list[tuple[str, str]] = []  # (NO_WHOLE or an index into _DocsChoice.offers, label)
whole_choice = "none"

_SETTING_NAMES = frozenset(name for name, _ in _SETTINGS)
_FRAME = inspect.currentframe()  # binds the page to this module's variables


@dataclass
class _Tab:
    """What the server keeps for one tab (see web/per_tab.py): the objects a reply runs on
    and the facts that guard them, which page variables only show."""

    session: ChatSession
    chat_log: ChatLog | None = None  # None until the chat is stored
    cancel: threading.Event | None = None  # of the running reply (None: no reply runs)
    reply_id: int | None = None  # the message the running reply writes into
    live_key: str = ""  # the running reply's text stream (web/live.py)
    # Its place in the engine's queue (0: running). A waiting reply's stream stays closed: a
    # browser keeps at most six connections to a site, and eight tabs may wait at once.
    queued: int = 0
    # The last message of the branch this tab shows: another tab may show (and store as the
    # chat's) another branch of the same chat; each keeps its own (see `_own_branch`).
    leaf_id: int | None = None
    run_id: int = 0  # bumped when the tab leaves a chat: an abandoned reply's updates drop
    view: ChatView | None = None  # its conversation component's view (set in init_state)
    notice: chat_list.Notice = field(default_factory=chat_list.Notice)  # the list says it

    @property
    def busy(self) -> bool:
        return self.cancel is not None


_tab = PerTab(lambda: _Tab(app().new_session()))


def init_state(state: State) -> None:
    """Give a new tab its own (not yet stored) conversation, its view and the configured
    settings."""
    ctx = app()
    _tab.reset(state)
    _view(state)
    state.draft = ""
    state.busy = False
    state.import_path = ""
    state.model_loading = False
    state.chat_error = state.settings_error = state.settings_note = state.prompt_example = ""
    _show_settings(state, ctx.default_system_prompt(), ctx.config.sampling)
    _show_chat_facts(state, None)
    refresh_model(state)
    _show_documents(state, None)
    if ctx.engines.backend_models.stale():  # the servers' lists: asked once per tab at most
        _list_backends(state)


def _view(state: State) -> ChatView:
    """The tab's conversation view, opened (and its key given to the tab) on first use."""
    tab = _tab(state)
    if tab.view is None:
        tab.view = open_view(
            state.get_gui(),
            get_state_id(state) or "",
            snapshot=lambda: _snapshot(tab),
            act=_act,
            search=_search,
            chats=lambda: _chats(tab),
        )
        state.view_key = tab.view.key
    return tab.view


def _snapshot(tab: _Tab) -> dict[str, Any]:
    """The tab's conversation for its component (called from the view's route thread)."""
    ctx = app()
    chat = None
    log = tab.chat_log
    if log is not None:
        with contextlib.suppress(LocalChatError):  # deleted in another tab: nothing to show
            chat = ctx.store.get_chat(log.chat_id)
            if tab.leaf_id is not None and tab.leaf_id != chat.current_leaf_id:
                # another tab moved the chat to another branch: this tab shows its own
                chat = conversation.with_branch(chat, ctx.store.tree(chat.id), tab.leaf_id)
    engine = tab.session.engine
    loaded = engine.loaded
    refusal = "" if engine.can_continue else engine.continue_refusal
    return conversation.conversation_json(
        ctx.labels,
        chat,
        sources=_sources(chat),
        live_id=tab.reply_id if tab.busy else None,
        live_key=tab.live_key if tab.busy and not tab.queued else "",
        busy=tab.busy,
        n_ctx=loaded.n_ctx if loaded is not None else 0,
        max_tokens=tab.session.params.max_tokens,
        continue_refusal=(ctx.labels["continue_refused"].format(reason=refusal) if refusal else ""),
    )


def _sources(chat: StoredChat | None) -> dict[int, list[dict[str, str]]]:
    """The sources of each reply of the branch shown that used documents: a label (file,
    page or section) and the passage, plain text."""
    if chat is None:
        return {}
    words, library = _source_words(), app().library
    found: dict[int, list[dict[str, str]]] = {}
    for message in chat.messages:
        if message.role == "assistant" and message.status != "streaming":
            with contextlib.suppress(LocalChatError):
                rows = library.sources(message.id)
                if rows:
                    found[message.id] = [
                        {"label": source_label(row, words), "text": str(row.get("text") or "")}
                        for row in rows
                    ]
    return found


def _chats(tab: _Tab) -> dict[str, Any]:
    """The tab's chat list for its component (called from the view's route thread)."""
    ctx = app()
    log = tab.chat_log
    return chat_list.chat_list_json(
        ctx.labels,
        ctx.store.list_chats(),
        open_id=log.chat_id if log is not None else None,
        notice=tab.notice,
    )


def _search(words: str) -> list[dict[str, Any]]:
    """The chat list's search box (called from the view's route thread)."""
    ctx = app()
    try:
        hits = ctx.store.search_chats(words)
    except LocalChatError:  # words FTS5 cannot take were made safe by the library; a
        return []  # database problem shows on the next real action
    return [conversation.hit_json(ctx.labels, hit) for hit in hits]


def _show_settings(state: State, prompt: str, params: SamplingParams) -> None:
    state.system_prompt = prompt
    for name, _ in _SETTINGS:
        setattr(state, name, getattr(params, name))


def _show_chat_facts(state: State, chat: StoredChat | None) -> None:
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
    _show_prompt_hint(state, engine)
    _show_model_choices(state, engine)


def _show_model_choices(state: State, engine: Any) -> None:
    """The picker: the folder's models and the servers' (as last heard: asked when a tab
    opens and the lists are older than a few minutes, or with the Refresh button), the one
    in use chosen. Assigned only when changed: each assignment redraws the selector."""
    ctx = app()
    listings = ctx.engines.backend_models.listings()
    entries = model_picker.choices(ctx.config.models_dir, listings, ctx.labels)
    if [tuple(entry) for entry in state.model_choices or []] != entries:
        state.model_choices = entries
    down = model_picker.down_line(listings, ctx.labels)
    if state.backends_line != down:
        state.backends_line = down
    model = engine.model_name if engine.backend_name != LOCAL_BACKEND or engine.loaded else ""
    chosen = model_picker.value_of(engine.backend_name, model)
    if state.model_choice != chosen and not state.model_loading:
        state.model_choice = chosen
    _show_model_settings(state)


def _list_backends(state: State, *, force: bool = False) -> None:
    """Ask the servers for their models in a thread (at most a few seconds), then redraw."""
    listing = app().engines.backend_models
    in_background(state, "backends", lambda: listing.refresh(force=force), _backends_listed)


def _backends_listed(state: State, _name: str, _error: str, _result: Any) -> None:
    _show_model_choices(state, _tab_engine(state))


def refresh_backends(state: State) -> None:
    """The picker's Refresh button: ask every server again."""
    _list_backends(state, force=True)


def pick_model(state: State, _var: str, value: object) -> None:
    """The chat bar's picker: load the chosen model of the folder, or switch to the chosen
    model of a server, for this tab's chat (and new chats, as the models page does). Any
    client can send any value: only one the picker offers now counts. A reply being written
    in any tab ends first (the engine loads at its turn); the line under the bar says so."""
    ctx = app()
    engine = _tab_engine(state)
    listings = ctx.engines.backend_models.listings()
    choice = model_picker.parse(value, ctx.config.models_dir, listings)
    if state.model_loading or choice is None:
        _show_model_choices(state, engine)  # back to what is in use
        return
    in_use = choice.backend != LOCAL_BACKEND or engine.loaded is not None
    if in_use and (choice.backend, choice.model) == (engine.backend_name, engine.model_name):
        return
    t = ctx.labels
    if choice.backend == LOCAL_BACKEND:
        if not model_actions.load_model(state, choice.model, _picked):
            return
        state.loading_line = t["model_loading_line"].format(model=choice.model)
    else:
        model_actions.use_remote_model(state, choice.backend, choice.model, _picked)
        state.loading_line = t["model_switching_line"].format(
            model=choice.model, backend=choice.backend
        )
    state.model_loading = True


def _picked(state: State, name: str, error: str) -> None:
    """The picker's model is ready (or failed): this tab's chat, stored or not, now answers
    from where new chats go (the model just loaded, or the server just chosen)."""
    state.model_loading = False
    state.loading_line = ""
    if not error:
        _tab(state).session.engine = app().engines.active
    _show_model(state)


def _panel_model(state: State) -> str:
    """The model the settings panel is for: the local model this tab uses ("" otherwise)."""
    engine = _tab_engine(state)
    return engine.model_name if engine.backend_name == LOCAL_BACKEND and engine.loaded else ""


def _show_model_settings(state: State, note: str = "") -> None:
    model = _panel_model(state)
    panel = model_settings.panel_for(model, app().labels, note=note) if model else None
    _show_panel(state, panel or model_settings.Panel())


def _show_panel(state: State, panel: model_settings.Panel) -> None:
    """Put `panel` on this page (only what changed: each assignment redraws)."""
    for name, value in model_settings.fields(panel).items():
        if getattr(state, name) != value:
            setattr(state, name, value)


def model_settings_changed(state: State, var_name: str = "", value: Any = None) -> None:
    """A settings field changed: the memory that context needs, or why the value is wrong."""
    typed = (state.ms_ctx, state.ms_threads)
    panel = model_settings.panel_for(_panel_model(state), app().labels, typed=typed)
    _show_panel(state, panel)


def save_model_settings(state: State) -> None:
    """Save: remember the fields' values for the model in use (checked; a bad one changes
    nothing); it loads with them next time, or now with Reload."""
    t = app().labels
    model = _panel_model(state)
    try:
        settings = model_settings.save(model, state.ms_ctx, state.ms_threads)
    except LocalChatError as exc:
        state.ms_error = error_text(exc, t)
        return
    _show_model_settings(state, model_settings.saved_note(model, settings, t))


def reset_model_settings(state: State) -> None:
    """Defaults: forget the values chosen for the model in use (config.toml's apply)."""
    t = app().labels
    model = _panel_model(state)
    try:
        model_settings.reset(model)
    except LocalChatError as exc:
        state.ms_error = error_text(exc, t)
        return
    _show_model_settings(state, t["ms_reset_done"].format(model=model))


def reload_model(state: State) -> None:
    """Reload to apply: load the model in use again with its saved settings, at its turn
    (after any reply being written, in any tab: never cut)."""
    model = _panel_model(state)
    if state.model_loading or not model:
        return
    if model_actions.load_model(state, model, _picked):
        state.model_loading = True
        state.loading_line = app().labels["model_loading_line"].format(model=model)


def refresh_chats(state: State) -> None:
    """The chat list changed (here or in another tab): the tab's list component fetches it
    again (web/static/chat-list.js redraws only the rows that changed)."""
    state.list_version = _next(state.list_version)


refresh.subscribe(refresh.CHATS, refresh_chats)


def _chats_changed(state: State) -> None:
    """A chat was made, renamed, pinned, deleted or imported: every tab's list shows it."""
    refresh.publish_everywhere(state.get_gui(), refresh.CHATS)


def _say(state: State, kind: str, text: str, *, chats_changed: bool = False) -> None:
    """What a chat list action came to, said in the list ("ok" or "error"); with
    `chats_changed`, every tab's list shows the change too."""
    tab = _tab(state)
    tab.notice = chat_list.Notice(tab.notice.seq + 1, kind, text)
    if chats_changed:
        _chats_changed(state)
    else:
        refresh_chats(state)


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
        except (TypeError, ValueError, OverflowError):
            raise LocalChatError(
                f"{name}: {value!r} is not a number", code="not_a_number", field=name, value=value
            ) from None
    return values


def _show_error(state: State, error: LocalChatError | str) -> None:
    """Say why a message was not sent, above the input (a toast would cover it); a bad
    setting is also named under the settings."""
    text = error_text(error, app().labels)
    state.chat_error = text
    if isinstance(error, LocalChatError) and error.values.get("field") in _SETTING_NAMES:
        state.settings_error = text


def check_settings(state: State, var_name: str = "", value: Any = None) -> None:
    """A setting changed: say at once if it is out of range (it is checked again at send)."""
    try:
        SamplingParams().replace(**_sampling_overrides(state))
        checked_system_prompt(state.system_prompt)
    except LocalChatError as exc:
        state.settings_error = error_text(exc, app().labels)
        return
    if state.settings_error:
        state.settings_error = ""
    if state.chat_error and var_name in _SETTING_NAMES:
        state.chat_error = ""


def use_example(state: State, var_name: str, value: Any) -> None:
    """An example prompt picked: it goes into the system prompt field (a client can send any
    value: only the names of the examples count)."""
    state.prompt_example = ""
    if value in PROMPT_EXAMPLES:
        state.system_prompt = app().labels[f"preset_{value}_text"]
        check_settings(state)


def save_default_prompt(state: State) -> None:
    """The "Use for new chats" button: remember the field's system prompt for new chats."""
    ctx = app()
    try:
        prompt = checked_system_prompt(state.system_prompt)
        ctx.prefs.set_system_prompt(prompt)
    except LocalChatError as exc:
        state.settings_error = error_text(exc, ctx.labels)
        return
    state.settings_error = ""
    state.settings_note = ctx.labels["default_prompt_saved" if prompt else "default_prompt_cleared"]


_template_prompts: dict[tuple[str, str, str], str] = {}  # (model, format, template) -> prompt


def _show_prompt_hint(state: State, engine: Any) -> None:
    """Under the system prompt: the one the model's template adds when the chat has none.
    A model file's template renders in a helper with a time limit: found in a thread, never
    on the way to opening the page."""
    fmt = None
    if engine.backend_name == LOCAL_BACKEND and engine.loaded is not None:
        with contextlib.suppress(LocalChatError):
            fmt = engine.chat_format(app().engines.format_choice(engine))
    key = (engine.model_name, fmt.name, fmt.template) if fmt is not None else None
    if key is None or key in _template_prompts:
        if state.prompt_hint_key:  # a lookup still running is for another model
            state.prompt_hint_key = ""
        _set_prompt_hint(state, _template_prompts[key] if key else "")
        return

    def find() -> str:
        _template_prompts[key] = template_system_prompt(fmt)  # type: ignore[arg-type]
        return _template_prompts[key]

    name = f"{engine.model_name}\n{fmt.name}"
    state.prompt_hint_key = name
    in_background(state, name, find, _hint_found)


def _hint_found(state: State, name: str, error: str, prompt: Any) -> None:
    if state.prompt_hint_key == name:  # still the model this tab shows
        _set_prompt_hint(state, prompt if isinstance(prompt, str) else "")


def _set_prompt_hint(state: State, prompt: str) -> None:
    hint = app().labels["template_prompt"].format(prompt=prompt) if prompt else ""
    if state.prompt_hint != hint:
        state.prompt_hint = hint


def relabel(state: State) -> None:
    """The tab's language changed: say again what this page shows in words (the open chat and
    its settings stay)."""
    state.settings_error = state.settings_note = state.chat_error = ""
    _show_model(state)
    refresh_chats(state)  # the list's labels, and "New chat" titles, are words too
    _changed(state)  # the conversation's labels and footers are words too


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

    def ask(cancel: threading.Event, on_queue: Callable[[int], None]) -> SavedReply:
        tab.session.messages_for(text)  # a message the model cannot take stores nothing
        log = tab.chat_log or ChatLog.start(app().store, tab.session)
        reply = _ask(state, log, text, cancel, on_queue)
        tab.chat_log = log
        return reply

    error = _start_reply(state, ask, question=text)
    if error:
        _show_error(state, error)
    else:
        state.draft = ""  # even if the bound value is behind: the input's change may follow


# How a reply starts: (cancel event, queue-position callback) -> the reply to iterate.
_MakeReply = Callable[[threading.Event, Callable[[int], None]], SavedReply]


def _start_reply(state: State, make: _MakeReply, *, question: str) -> Exception | str:
    """Run a reply in this tab: the page's settings become the chat's, `make` stores what it
    must and returns the reply, a thread streams it to the tab's view. `question` goes back
    into the input if the model refuses it. Returns "" or why nothing was started (then
    nothing was stored): the error, or words already in the tab's language."""
    ctx = app()
    tab = _tab(state)
    if tab.busy:
        return ctx.labels["reply_running"]
    session = tab.session
    engine = _tab_engine(state)
    try:
        engine.prepare()  # a reopened chat's server: checks it still offers the model
    except LocalChatError as exc:  # no model, or a server that stopped offering it
        return exc
    stop_event = threading.Event()
    ready = threading.Event()  # set once this handler has made its page changes
    _view(state)
    gui, state_id, run = state.get_gui(), get_state_id(state), tab.run_id

    def on_queue(position: int) -> None:  # called in the reply thread while waiting
        tab.queued = position  # first: the view gives no stream key to a waiting reply
        ready.wait(READY_WAIT_S)
        invoke_callback(gui, state_id, _show_queue, [run, position])

    had_log = tab.chat_log is not None
    try:
        _own_branch(tab)
        # The page's settings become the chat's (checked here: bad ones store nothing).
        session.params = session.params.replace(**_sampling_overrides(state))
        session.system_prompt = checked_system_prompt(state.system_prompt)
        session.chat_format = ctx.engines.format_choice(engine)
        reply = make(stop_event, on_queue)
    except (LocalChatError, ValueError) as exc:  # bad settings, input or id; the database
        return exc
    # The model starts on the prompt now, not after the page changes below: each Taipy
    # assignment is a websocket message and a re-render of the page in the browser. The
    # reply's end waits for `ready`.
    live_key, live = open_live()
    worker = threading.Thread(
        target=_stream,
        args=(gui, state_id, tab, reply, live, question, run, ready),
        name="reply-stream",
        daemon=True,
    )
    worker.start()
    tab.cancel = stop_event
    tab.reply_id = tab.leaf_id = reply.message_id
    tab.live_key = live_key
    _changed(state)  # the question (and the empty reply) show at once
    try:
        # Assigning sends even an unchanged value to the page: only what changed.
        if state.chat_model != engine.model_name:
            state.chat_model = engine.model_name
        if state.chat_backend != engine.backend_name:
            state.chat_backend = engine.backend_name
        if state.offer_line or state.offer_label:
            state.offer_line = state.offer_label = ""
        if not had_log and tab.chat_log is not None:
            _chats_changed(state)  # a new chat: in every tab's list
        else:
            refresh_chats(state)  # this chat is now the most recently active
        if state.chat_error:
            state.chat_error = ""
        state.busy = True
    finally:
        ready.set()
    return ""


def _stream(
    gui: Gui,
    state_id: str,
    tab: _Tab,
    reply: SavedReply,
    live: LiveText,
    question: str,
    run: int,
    ready: threading.Event,
) -> None:
    """Worker thread: read the reply (which saves itself) and publish its text to the tab;
    the tab hears of its end once `_start_reply` has made its own changes (`ready`)."""
    error: Exception | str = ""  # worded in the tab (`_finish`): this thread has no language
    try:
        for _ in reply:
            live.publish(reply.text)
            if tab.queued:  # its turn came: the tab may open the stream now
                tab.queued = 0
                invoke_callback(gui, state_id, _left_queue, [run])
    except Exception as exc:  # whatever happens, the tab must leave its busy state
        error = exc
    finally:
        live.publish(reply.text)
        live.end()
    ready.wait(READY_WAIT_S)
    invoke_callback(gui, state_id, _finish, [run, reply, question, error])


def _show_queue(state: State, run: int, position: int) -> None:
    # Sent from the reply thread before any text, so it never hides a reply being written.
    if _tab(state).run_id == run:
        state.reply_status = app().labels["queued"].format(n=position)


def _left_queue(state: State, run: int) -> None:
    if _tab(state).run_id == run:
        state.reply_status = ""
        _changed(state)


def _changed(state: State) -> None:
    """The conversation changed: the tab's component fetches it again (one small page
    variable, sent along with the page changes the same callback makes)."""
    state.view_version = _next(state.view_version)


def _next(counter: Any) -> int:
    """A page counter bumped (a client can set it to anything: then it starts again)."""
    return counter + 1 if type(counter) is int and 0 <= counter < 2**53 else 1


def _finish(
    state: State, run: int, reply: SavedReply, question: str, failure: Exception | str
) -> None:
    tab = _tab(state)
    if tab.run_id != run:
        return
    error = error_text(failure, app().labels) if failure else ""
    tab.cancel = None
    tab.reply_id = None
    tab.live_key = ""
    tab.queued = 0
    if state.reply_status:
        state.reply_status = ""
    state.busy = False
    _changed(state)  # the finished reply with its figures (or the refused one gone)
    if reply.refused:
        _undo_send(state, question, error, chat_deleted=reply.chat_deleted)
        _follow_store(tab)
        return
    refresh_chats(state)  # this chat is now the most recently active
    if error:
        state.chat_error = error


def _undo_send(state: State, question: str, error: str, *, chat_deleted: bool) -> None:
    """The model refused the message (too long for its context) and nothing of it was
    stored: give it back in the input to shorten."""
    if question:
        state.draft = question
    if chat_deleted:  # the chat had been made for this message: back to a new, unsaved one
        _tab(state).chat_log = None
        _show_chat_facts(state, None)
    refresh_chats(state)
    state.chat_error = error


def stop(state: State) -> None:
    """Stop button: end the reply now (or leave the queue); what was written stays."""
    cancel = _tab(state).cancel
    if cancel is not None:
        cancel.set()


def _act(state: State, action: ViewAction) -> str:
    """An action from the conversation component (web/chat_view.py checked its fields):
    "" when done, else why not, in the user's language. Runs in the tab's state."""
    ctx = app()
    t = ctx.labels
    tab = _tab(state)
    if action.kind == "open":
        return _open_hit(state, action.chat_id, action.message_id)
    if action.kind in CHAT_ACTIONS:
        return _chat_act(state, action)
    if tab.busy:
        return t["reply_running"]
    log = tab.chat_log
    try:
        # Any id a stranger sends must be a message of the chat this tab has open.
        if log is None or action.message_id not in {m.id for m in ctx.store.tree(log.chat_id)}:
            return t["message_gone"]
        if action.kind in ("switch", "delete"):
            _own_branch(tab)
            if action.kind == "switch":
                chat = log.switch_to(action.message_id)
            else:
                chat = log.delete_branch(action.message_id)
            tab.leaf_id = chat.current_leaf_id
            _changed(state)
            return ""
    except (LocalChatError, ValueError) as exc:
        return error_text(exc, t)
    make = _reply_maker(state, log, action)
    return error_text(_start_reply(state, make, question=action.text), t)


def _own_branch(tab: _Tab) -> None:
    """Before this tab acts on its chat: if another tab has since shown (and stored) another
    branch of it, this tab's branch becomes the chat's again, in the store and in the
    session's history, so its action applies to what it shows."""
    log = tab.chat_log
    if log is None or tab.leaf_id is None:
        return
    if app().store.get_chat(log.chat_id).current_leaf_id != tab.leaf_id:
        try:
            log.switch_to(tab.leaf_id)
        except (LocalChatError, ValueError):  # deleted in the other tab: take the chat's
            _follow_store(tab)


def _follow_store(tab: _Tab) -> None:
    """This tab shows the chat's stored branch (after a change that moved it)."""
    log = tab.chat_log
    tab.leaf_id = None
    if log is not None:
        with contextlib.suppress(LocalChatError):
            tab.leaf_id = app().store.get_chat(log.chat_id).current_leaf_id


def _reply_maker(state: State, log: ChatLog, action: ViewAction) -> _MakeReply:
    """What starts the reply an edit, a regenerate or a continue asks for (an edit and a
    regenerate answer from the chat's documents too, as a sent message does)."""
    message_id = action.message_id

    def make(cancel: threading.Event, on_queue: Callable[[int], None]) -> SavedReply:
        if action.kind == "continue":
            return log.continue_reply(message_id, cancel=cancel, on_queue=on_queue)
        asker = _Branching(log, action.kind, message_id)
        return _ask(state, asker, asker.question(action.text), cancel, on_queue)

    return make


@dataclass
class _Branching:
    """A `ChatLog` whose `ask` edits user message `message_id` or regenerates reply
    `message_id` instead of adding an exchange: what `ask_with_documents` calls."""

    log: ChatLog
    kind: str  # "edit" or "regenerate"
    message_id: int

    @property
    def session(self) -> ChatSession:
        return self.log.session

    @property
    def chat_id(self) -> int:
        return self.log.chat_id

    def question(self, edited: str) -> str:
        """The message the reply answers: the edited text, or the regenerated reply's prompt."""
        if self.kind == "edit":
            return edited
        tree = {m.id: m for m in self.log.store.tree(self.log.chat_id)}
        parent = tree[self.message_id].parent_id if self.message_id in tree else None
        return tree[parent].content if parent in tree else ""

    def ask(self, text: str, **options: Any) -> SavedReply:
        if self.kind == "edit":
            return self.log.edit(self.message_id, text, **options)
        return self.log.regenerate(self.message_id, **options)


def _leave_chat(state: State) -> None:
    """Stop this tab's running reply (it is still saved, as stopped) and drop its updates."""
    tab = _tab(state)
    if tab.cancel is not None:
        tab.cancel.set()
    tab.cancel = None
    tab.reply_id = None
    tab.live_key = ""
    tab.queued = 0
    tab.run_id += 1
    if state.busy:
        state.busy = False
    if state.reply_status:
        state.reply_status = ""


def new_chat(state: State) -> None:
    """New chat button: an empty conversation, stored when its first message is sent."""
    _leave_chat(state)
    tab = _tab(state)
    tab.session = app().new_session()  # with the default system prompt, as every new chat
    state.system_prompt = tab.session.system_prompt
    state.chat_error = state.settings_error = state.settings_note = ""
    tab.chat_log = None
    tab.leaf_id = None
    _changed(state)
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
    tab.leaf_id = chat.current_leaf_id
    _changed(state)
    _show_settings(state, chat.system_prompt, log.session.params)
    _show_chat_facts(state, chat)
    _show_model(state)
    _show_documents(state, chat_id)


def _open_hit(state: State, chat_id: int, message_id: int) -> str:
    """A chat of the list (`message_id` 0: as stored), or a search hit (at the branch that
    holds the hit): open it, unless a reply runs here (it would be cut)."""
    ctx = app()
    tab = _tab(state)
    if not message_id and tab.chat_log is not None and tab.chat_log.chat_id == chat_id:
        return ""  # the open chat's row: it stays as this tab shows it
    if tab.busy:
        return ctx.labels["reply_running"]
    try:
        if message_id:
            ctx.store.switch_to(chat_id, message_id)  # checks the message is in that chat
        _open(state, chat_id)
    except (LocalChatError, ValueError) as exc:  # deleted meanwhile, or a made-up id
        refresh_chats(state)
        return error_text(exc, ctx.labels)
    refresh_chats(state)  # the list shows it selected
    return ""


def _chat_act(state: State, action: ViewAction) -> str:
    """The chat list's menu: rename, pin, export or delete any stored chat (its id, from a
    stranger, must be one: else the chat-not-found words and nothing changes). "" when done,
    else why not; what it came to is also said in the list."""
    ctx = app()
    t = ctx.labels
    tab = _tab(state)
    try:
        chat = ctx.store.get_chat(action.chat_id)
        title = chat.title or t["untitled"]
        open_here = tab.chat_log is not None and tab.chat_log.chat_id == chat.id
        if action.kind == "rename":
            ctx.store.rename_chat(chat.id, action.text)
            note = t["renamed"].format(title=ctx.store.get_chat(chat.id).title)
        elif action.kind == "pin":
            ctx.store.set_pinned(chat.id, action.pinned)
            note = t["pinned" if action.pinned else "unpinned"].format(title=title)
        elif action.kind == "export":
            # Markdown: the branch this tab shows when the chat is its open one
            leaf = tab.leaf_id if open_here else None
            name, text = chat_list.export_file(ctx.store, chat.id, action.text, leaf_id=leaf)
            download(state, content=text.encode("utf-8"), name=name)
            _say(state, "ok", t["exported"].format(title=title, file=name))
            return ""
        else:  # delete_chat
            if open_here:
                _leave_chat(state)  # its reply, if one runs, stops (and is deleted with it)
            ctx.store.delete_chat(chat.id)
            if open_here:
                new_chat(state)
            note = t["deleted"].format(title=title)
    except (LocalChatError, ValueError) as exc:  # an unknown id, a bad title, the database
        refresh_chats(state)  # what the list shows may be out of date
        return error_text(exc, t)
    _say(state, "ok", note, chats_changed=True)
    return ""


def import_chat(state: State) -> None:
    """A JSON export was uploaded: store it as a new chat and open it; the list says how it
    went (a refused file: why, and nothing is stored).

    The path comes from a page variable, which any client can set: only a file this tab's
    own upload wrote into the app's uploads folder is read (and then deleted)."""
    ctx = app()
    t = ctx.labels
    try:
        name, data = take_upload(get_state_id(state) or "", state.import_path)
    except UploadError as exc:
        _say(state, "error", error_text(exc, t))
        return
    try:
        chat_id = chat_export.import_chat(ctx.store, data)
    except LocalChatError as exc:  # not a valid export: nothing was stored
        _say(state, "error", t["import_refused"].format(file=name, error=error_text(exc, t)))
        return
    title = ""
    with contextlib.suppress(LocalChatError):  # deleted in another tab at once: not opened
        title = ctx.store.get_chat(chat_id).title
        _open(state, chat_id)
    _say(state, "ok", t["imported"].format(title=title or t["untitled"]), chats_changed=True)


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


def toggle_drawer(state: State) -> None:
    """The chat list's and the settings' buttons: their drawers open and close in the browser
    (web/static/drawers.js); the server has nothing to do."""


def build_page() -> tgb.Page:
    """The chat page, labelled in the configured language."""
    ctx = app()
    t = ctx.labels
    with (
        tgb.Page(frame=_FRAME) as page,
        tgb.layout("240px 1fr 300px", columns__mobile="1", class_name="lc-chat-layout"),
    ):
        _chat_list(t)
        with tgb.part(class_name="lc-chat-main"):
            with tgb.layout("1fr auto", columns__mobile="1", class_name="lc-chat-bar"):
                with tgb.part(class_name="lc-model-bar"):
                    with tgb.part(render="{len(model_choices) > 0}", class_name="lc-model-pick"):
                        tgb.selector(
                            "{model_choice}",
                            lov="{model_choices}",
                            value_by_id=True,
                            dropdown=True,
                            label=t["model_pick"],
                            on_change=pick_model,
                            active="{not model_loading}",
                            id="model_pick",
                        )
                        if ctx.config.backends:  # the servers' lists, asked again
                            tgb.button(
                                "↻",
                                id="refresh_models",
                                on_action=refresh_backends,
                                hover_text=t["refresh_models"],
                                class_name="lc-icon-button",
                            )
                    with tgb.part(render="{backends_line != ''}", id="backends_line"):
                        tgb.text("{backends_line}", class_name="lc-help")
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
                with tgb.part(class_name="lc-chat-buttons"):
                    # On a narrow screen the chat list and the settings are drawers these
                    # buttons open (web/static/drawers.js; hidden on a wide one).
                    tgb.button(
                        t["open_chats"],
                        id="open_chats",
                        on_action=toggle_drawer,
                        class_name="lc-drawer-button",
                    )
                    tgb.button(t["stop"], id="stop", on_action=stop, active="{busy}")
                    tgb.button(t["new_chat"], id="new_chat", on_action=new_chat)
                    tgb.button(
                        t["open_settings"],
                        id="open_settings",
                        on_action=toggle_drawer,
                        class_name="lc-drawer-button",
                    )
            with tgb.part(render="{loading_line != ''}", id="model_loading", class_name="lc-help"):
                tgb.text("{loading_line}")
                tgb.progress(linear=True)
            # Drawn by web/static/conversation.js (web/chat_view.py), never by page variables.
            _documents_bar(t)
            tgb.part(id="conversation", class_name="lc-conversation")
            tgb.part(id="context_used", class_name="lc-context")  # conversation.js: tokens used
            # What the component reads from the page (see web/chat_view.py).
            tgb.text("{view_key}", id="view_key", class_name="lc-hidden")
            tgb.text("{view_version}", id="view_version", class_name="lc-hidden")
            tgb.text("{reply_status}", id="reply_status", class_name="lc-hidden")
            with tgb.part(render="{chat_error != ''}", id="chat_error", class_name="lc-error"):
                tgb.text("{chat_error}")
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
    """The right column: the system prompt (examples, the default for new chats, the one the
    model's template adds) and every generation setting with a line on what it does.

    Each field sends what is typed at once (`change_delay=0`; Taipy's default waits 300 ms,
    and an Enter pressed meanwhile sent the message with the old value). What is wrong is
    said under the fields, not in a toast over the message input."""
    with tgb.part(class_name="lc-sidebar lc-drawer", id="settings_drawer"):
        # The local model in use: its context length and threads (pages/model_settings.py).
        model_settings.build_panel(
            t,
            on_change=model_settings_changed,
            on_save=save_model_settings,
            on_reset=reset_model_settings,
            on_reload=reload_model,
            active="{not model_loading}",
        )
        tgb.input(
            "{system_prompt}",
            label=t["system_prompt"],
            multiline=True,
            lines_shown=5,
            id="system_prompt",
            class_name="fullwidth",
            change_delay=0,
            on_change=check_settings,
        )
        with tgb.part(render="{prompt_hint != ''}", id="prompt_hint", class_name="lc-help"):
            tgb.text("{prompt_hint}")
        with tgb.layout("1fr auto", class_name="lc-prompt-tools"):
            tgb.selector(
                "{prompt_example}",
                lov=[(name, t[f"preset_{name}"]) for name in PROMPT_EXAMPLES],
                dropdown=True,
                label=t["prompt_examples"],
                on_change=use_example,
                id="prompt_example",
                class_name="fullwidth",
            )
            tgb.button(
                t["default_prompt_save"], id="save_default_prompt", on_action=save_default_prompt
            )
        with tgb.part(render="{settings_note != ''}", id="settings_note", class_name="lc-help"):
            tgb.text("{settings_note}")
        with tgb.part(render="{settings_error != ''}", id="settings_error", class_name="lc-error"):
            tgb.text("{settings_error}")
        with tgb.expandable(title=t["settings"], expanded=False, id="settings"):
            tgb.text(t["settings_apply"], class_name="lc-help")
            # No min/max here: Taipy would silently keep the old value; the
            # library's check names the setting and its range instead.
            for name, step in _SETTINGS:
                tgb.number(
                    "{" + name + "}",
                    label=t[name],
                    step=step,
                    id=name,
                    class_name="fullwidth",
                    change_delay=0,
                    on_change=check_settings,
                )
                tgb.text(t[f"help_{name}"], class_name="lc-help", id=f"help_{name}")


def _chat_list(t: Any) -> None:
    """The left column (a drawer on a phone): the search box, the chats in date groups with a
    menu each, what the last action came to, and Import at the foot. The search and the list
    are drawn by web/static/conversation.js and chat-list.js, not by page variables."""
    with tgb.part(class_name="lc-chat-list lc-drawer", id="chats_drawer"):
        tgb.text(t["chats"], class_name="h6")
        tgb.part(id="chat_search", class_name="lc-chat-search")  # conversation.js's search
        tgb.part(id="chat_list", class_name="lc-chat-rows")  # chat-list.js's rows
        tgb.text("{list_version}", id="list_version", class_name="lc-hidden")
        tgb.part(id="chat_notice", class_name="lc-chat-notice")  # chat-list.js's notice
        tgb.file_selector(
            "{import_path}",
            label=t["import_json"],
            extensions=".json",
            on_action=import_chat,
            notify=False,  # the list says how it went ("Uploaded" would precede a refusal)
            id="import_json",
            drop_message=t["import_json"],
            class_name="lc-import",
        )


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


_docs = PerTab(_DocsChoice)


def _collection_names() -> tuple[list[str], list[str]]:
    """Every collection, and those with indexed files (the ones offered)."""
    with contextlib.suppress(LocalChatError):
        infos = app().library.collections()
        return [c.name for c in infos], [c.name for c in infos if c.files_indexed]
    return [], []


def _show_documents(state: State, chat_id: int | None) -> None:
    """The open chat's collections (a new chat: none yet) and the documents on offer."""
    choice = _docs.reset(state)
    if chat_id is not None:
        with contextlib.suppress(LocalChatError):
            choice.collections = app().library.chat_collections(chat_id)
        choice.saved_for = chat_id
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
    state: State, log: ChatLog | _Branching, text: str, cancel: threading.Event, on_queue: Any
) -> SavedReply:
    """A message's request (sent, edited or asked again): with the chosen collections'
    passages (or the whole document chosen) when there are any; a new chat's choice is stored
    with it here."""
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
