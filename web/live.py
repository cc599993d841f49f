"""Replies streamed to the page beside Taipy's state: one server-sent-events stream per reply.

Why: every change of a Taipy page variable re-renders the whole page in the browser (Taipy
re-parses the page's JSX and re-renders every control, Markdown chat rows included): 35-45 ms
of CPU per update, a third of a core at 10 updates a second, taken from llama.cpp's threads
when browser and model share a machine. So the growing reply text does not go through a page
variable. The reply thread publishes it to a `LiveText`; the tab reads `GET /lc-live/<key>`
(an EventSource opened by web/static/conversation.js, which learns the key from the tab's
conversation view, web/chat_view.py) and renders the text into the reply's bubble, which
React never re-renders. Taipy still carries the rest ("waiting — N ahead", that the
conversation changed).

The key is random (128 bits) and only given to the tab that asked, in its own state; the
access-token check in front of the whole app covers this route too. Each event carries what
was appended since the last one (or the whole text, if it changed otherwise), at most every
`MIN_GAP_S`; the stream ends with a `done` event when the reply ends.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator

from flask import Flask, Response

# At most 10 updates a second. Each update costs the browser a frame, 7-8 ms of CPU where it
# renders without a GPU; at every token (about 23 a second) that took 14% of llama.cpp's speed
# on a 2-core machine, at 10 a second 6-10% (bench/, README). A reply's first and last text
# are not held back.
MIN_GAP_S = 0.1
PING_S = 15.0  # a comment line this often finds a closed tab (the write fails)
LINGER_S = 30.0  # a finished reply stays readable this long (a late-connecting tab gets it)


class LiveText:
    """The text of one reply as it grows. Thread-safe: one writer, any number of readers."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._text = ""
        self._version = 0
        self._done = False
        self.ended_at: float | None = None

    def publish(self, text: str) -> None:
        """The reply's whole text so far."""
        with self._changed:
            if text != self._text:
                self._text = text
                self._version += 1
                self._changed.notify_all()

    def end(self) -> None:
        """No more text will come."""
        with self._changed:
            self._done = True
            self.ended_at = time.monotonic()
            self._changed.notify_all()

    def wait_end(self, timeout: float) -> bool:
        """Whether the reply has ended, waiting up to `timeout` seconds for it."""
        with self._changed:
            return self._changed.wait_for(lambda: self._done, timeout)

    def wait(self, seen: int, timeout: float) -> tuple[int, str, bool]:
        """(version, text, done) once the version is past `seen` or the reply ended, or
        after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != seen or self._done, timeout)
            return self._version, self._text, self._done


_lock = threading.Lock()
_live: dict[str, LiveText] = {}


def open_live() -> tuple[str, LiveText]:
    """A new reply stream and the key its tab reads it with."""
    key = secrets.token_urlsafe(16)
    live = LiveText()
    with _lock:
        now = time.monotonic()
        for old in [k for k, v in _live.items() if v.ended_at and now - v.ended_at > LINGER_S]:
            del _live[old]
        _live[key] = live
    return key, live


def _events(live: LiveText) -> Iterator[str]:
    seen, sent = 0, ""
    while True:
        version, text, done = live.wait(seen, PING_S)
        if version == seen and not done:
            yield ": ping\n\n"  # nothing new for PING_S: the write fails if the tab is gone
            continue
        if version != seen:
            # Appending is the usual case; the first event, or any other change, replaces.
            change = {"a": text[len(sent) :]} if seen and text.startswith(sent) else {"t": text}
            seen, sent = version, text
            yield f"data: {json.dumps(change, ensure_ascii=False)}\n\n"
        if done:
            yield "event: done\ndata: {}\n\n"
            return
        if sent.strip():  # until something visible is out, the next text goes at once
            live.wait_end(MIN_GAP_S)  # the gap that coalesces tokens; the end cuts it short


def add_live_route(flask_app: Flask) -> None:
    """Serve `GET /lc-live/<key>` as a server-sent-events stream."""

    @flask_app.route("/lc-live/<key>")
    def _live_stream(key: str) -> Response:
        with _lock:
            live = _live.get(key)
        if live is None:
            return Response("no such reply\n", status=404, mimetype="text/plain")
        return Response(
            _events(live),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
