"""Small scripts added to the page Taipy serves, for what Taipy cannot be told to do.

- One state per browser tab: Taipy's front end keeps its client id in `localStorage`, which
  every tab of the site shares, so a second tab would reconnect with the first tab's id and get
  the same state (one conversation mixed across tabs). The script keeps that one key in
  `sessionStorage` instead: each tab has its own id, kept across reloads of that tab. It must
  run before Taipy's scripts, hence inline at the top of <head>.
- Typing on after a reply: the message input is disabled while a reply runs, which takes the
  focus away; when it is enabled again and nothing else has the focus, it gets it back.
- Over-long messages: text that would make the message longer than `MAX_MESSAGE_CHARS` is not
  let in (a paste, a drop or typing), and a line under the input says why, in the library's
  own words. The server refuses such a message too, but past Engine.IO's 16 MB limit it never
  reaches the server: the connection drops it, and the user would see nothing happen. The
  insertion is cancelled before it happens rather than undone after, so the box keeps what it
  had and Taipy's copy of the text stays the same as the page's.
- The reply being written is read from its own event stream (`pages.live.SCRIPT`).
"""

from __future__ import annotations

from flask import Flask, Response

from llm.session import MAX_MESSAGE_CHARS

from .live import SCRIPT as LIVE_REPLY

CLIENT_ID_KEY = "TaipyClientId"

_PER_TAB_STATE = (
    "(() => {"
    f"const key = {CLIENT_ID_KEY!r};"
    "const get = Storage.prototype.getItem, set = Storage.prototype.setItem,"
    " remove = Storage.prototype.removeItem;"
    "const store = (s, k) => (s === window.localStorage && k === key ? window.sessionStorage : s);"
    "Storage.prototype.getItem = function (k) { return get.call(store(this, k), k); };"
    "Storage.prototype.setItem = function (k, v) { return set.call(store(this, k), k, v); };"
    "Storage.prototype.removeItem = function (k) { return remove.call(store(this, k), k); };"
    "})();"
)

_REFOCUS_CHAT_INPUT = (
    "(() => {"
    "let wasDisabled = false;"
    "new MutationObserver(() => {"
    "const input = document.querySelector('#message');"
    "if (!input) { wasDisabled = false; return; }"
    "const idle = !document.activeElement || document.activeElement === document.body;"
    "if (wasDisabled && !input.disabled && idle) input.focus();"
    "wasDisabled = input.disabled;"
    "}).observe(document.documentElement, {subtree: true, attributes: true,"
    " attributeFilter: ['disabled'], childList: true});"
    "})();"
)

# Listeners on the document in the capture phase run before React's (on its root element).
_MESSAGE_LIMIT = (
    "(() => {"
    f"const max = {MAX_MESSAGE_CHARS};"
    "const say = (text) => {"
    "let p = document.querySelector('#message_limit');"
    "if (!text) { if (p) p.remove(); return; }"
    "if (!p) {"
    " p = document.createElement('p'); p.id = 'message_limit'; p.className = 'lc-message-limit';"
    " p.setAttribute('role', 'alert');"
    " const box = document.querySelector('.lc-message');"
    " if (box) box.after(p); else document.body.append(p); }"
    "p.textContent = text;"
    "};"
    "const inBox = (e) => e.target && e.target.closest && e.target.closest('#message');"
    "const guard = (e, added) => {"
    "const box = e.target;"
    "if (!inBox(e) || added === null) return;"
    "const n = box.value.length - (box.selectionEnd - box.selectionStart) + added.length;"
    "if (n <= max) return;"
    "e.preventDefault(); e.stopImmediatePropagation();"
    "say('the message is too long: it would have ' + n.toLocaleString('en-US')"
    f" + ' characters, and a message can have at most {MAX_MESSAGE_CHARS:,}');"
    "};"
    "const text = (data) => (data ? data.getData('text/plain') : null);"
    "document.addEventListener('paste', (e) => guard(e, text(e.clipboardData)), true);"
    "document.addEventListener('drop', (e) => guard(e, text(e.dataTransfer)), true);"
    # the line goes once the text changes or is sent
    "document.addEventListener('input', (e) => { if (inBox(e)) say(''); }, true);"
    "document.addEventListener('keydown', (e) => {"
    "if (e.key === 'Enter' && !e.shiftKey && inBox(e)) say('');"
    "}, true);"
    "document.addEventListener('beforeinput', (e) => {"
    "if (e.inputType === 'insertText' || e.inputType === 'insertLineBreak')"
    " guard(e, e.data || '\\n');"
    "}, true);"
    "})();"
)

SCRIPT = f"<script>{_PER_TAB_STATE}{_REFOCUS_CHAT_INPUT}{_MESSAGE_LIMIT}{LIVE_REPLY}</script>"


def add_page_scripts(flask_app: Flask) -> None:
    """Add the scripts to every HTML page `flask_app` serves (Taipy's single index page)."""

    @flask_app.after_request
    def _add_script(response: Response) -> Response:
        if response.mimetype != "text/html" or response.direct_passthrough:
            return response
        html = response.get_data(as_text=True)
        if "<head>" in html and SCRIPT not in html:
            response.set_data(html.replace("<head>", "<head>" + SCRIPT, 1))
        return response
