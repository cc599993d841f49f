"""Small scripts added to the page Taipy serves, for what Taipy cannot be told to do. Each is a
file in `web/static/`, served at `/lc-static/<file>`:

- `per-tab-state.js`: one Taipy state per browser tab (Taipy keeps its client id where every
  tab of the site shares it); it must run before Taipy's scripts, hence first in <head>;
- `refocus-input.js`: the message input gets the focus back after a reply;
- `drawers.js`: on a narrow screen the chat list and the settings open as drawers;
- `message-limit.js`: text that would make a message longer than `MAX_MESSAGE_CHARS` is not
  let in, and a line under the input says why;
- `conversation.js`: the conversation, drawn from the tab's view (web/chat_view.py), with
  `vendor/markdown-it.min.js` and `vendor/highlight.min.js` (and its style sheet), vendored
  from npm by `scripts/vendor-js.sh`;
- `chat-list.js`: the chat list (date groups, each chat's menu), drawn from the tab's view
  too, with conversation.js's pieces. These load deferred, in this order: they need the
  page, not the other way round.
"""

from __future__ import annotations

import html
from pathlib import Path

from flask import Flask, Response, send_from_directory

from llm.session import MAX_MESSAGE_CHARS

from .context import app

STATIC_DIR = Path(__file__).resolve().parent / "static"
ROUTE = "/lc-static"
CLIENT_ID_KEY = "TaipyClientId"
_TOO_LONG = (
    "the message is too long: it would have {n} characters, and a message can have at most "
    f"{MAX_MESSAGE_CHARS:,}"
)


def _tag(name: str, *, defer: bool = False, **data: object) -> str:
    attributes = "".join(f' data-{k}="{html.escape(str(v))}"' for k, v in data.items())
    return f'<script src="{ROUTE}/{name}"{" defer" if defer else ""}{attributes}></script>'


def scripts(too_long: str = _TOO_LONG) -> str:
    """The script tags, the over-long message's line in the page's language."""
    return "".join(
        [
            _tag("per-tab-state.js", key=CLIENT_ID_KEY),
            _tag("refocus-input.js"),
            _tag("drawers.js"),
            _tag("message-limit.js", max=MAX_MESSAGE_CHARS, message=too_long),
            f'<link rel="stylesheet" href="{ROUTE}/vendor/highlight-dark.min.css">',
            _tag("vendor/markdown-it.min.js", defer=True),
            _tag("vendor/highlight.min.js", defer=True),
            _tag("conversation.js", defer=True),
            _tag("chat-list.js", defer=True),
        ]
    )


def _too_long_words() -> str:
    """The over-long message's line in the language of the browser asking (its cookie)."""
    try:
        words = app().labels.get("message_too_long")
    except RuntimeError:  # no app context installed (a bare server)
        words = None
    return words.replace("{max}", f"{MAX_MESSAGE_CHARS:,}") if words else _TOO_LONG


def add_page_scripts(flask_app: Flask) -> None:
    """Serve `web/static/` and add its scripts to every HTML page `flask_app` serves (Taipy's
    single index page)."""

    @flask_app.route(f"{ROUTE}/<path:name>")
    def _static(name: str) -> Response:
        response = send_from_directory(STATIC_DIR, name)  # refuses names outside the folder
        response.headers["Cache-Control"] = "no-cache"  # a new version shows at once
        return response

    @flask_app.after_request
    def _add_scripts(response: Response) -> Response:
        if response.mimetype != "text/html" or response.direct_passthrough:
            return response
        page = response.get_data(as_text=True)
        tags = scripts(_too_long_words())
        if "<head>" in page and tags not in page:
            response.set_data(page.replace("<head>", "<head>" + tags, 1))
        return response
