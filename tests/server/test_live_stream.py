"""The reply text stream (`web/live.py`) over real HTTP through Flask's test client: what a
tab's EventSource receives while a reply grows, and that only a known key is served."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import pytest
from flask import Flask

from web import live as live_module
from web.live import LiveText, add_live_route, open_live


def _events(body: str) -> list[tuple[str, str]]:
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields.get("event", "message"), fields["data"]))
    return events


def test_a_tab_reads_its_reply_as_it_grows_then_done() -> None:
    def write(live: LiveText) -> None:
        for text in ("Paris is", "Paris is the capital", "Paris is the capital."):
            time.sleep(0.05)
            live.publish(text)
        live.publish("Paris is the capital!")  # not an append: replaces

    # "Paris" is there before the tab connects: it gets the text so far.
    read = _read_while_writing("Paris", write)
    assert read.events[-1][1:] == ("done", "{}")
    changes = _changes(read.events)
    assert changes[0] == {"t": "Paris"}
    text = ""
    for change in changes:
        text = change["t"] if "t" in change else text + change["a"]
    assert text == "Paris is the capital!"
    assert {"a": " is"} in changes  # growth is sent as what was added
    assert ": ping" not in read.body  # a keep-alive only after PING_S without news


class _Read(NamedTuple):
    events: list[tuple[float, str, str]]  # (arrival time, event, data)
    ended_at: float  # when the writer ended
    body: str  # the stream as sent, comments included


def _read_while_writing(first: str, write: Callable[[LiveText], None]) -> _Read:
    """What a tab reads when a reply starts with `first` and `write(live)` goes on in a thread
    once the tab has it (the reply ends when `write` returns)."""
    server = Flask("live-test")
    add_live_route(server)
    key, live = open_live()
    live.publish(first)
    ended_at: list[float] = []

    def run() -> None:
        write(live)
        ended_at.append(time.monotonic())
        live.end()

    writer = threading.Thread(target=run)
    response = server.test_client().get(f"/lc-live/{key}", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events, body = [], ""
    for chunk in response.response:  # read as the tab does, while the reply is written
        at, text = time.monotonic(), _text(chunk)
        events += [(at, kind, data) for kind, data in _events(text)]
        body += text
        if writer.ident is None:
            writer.start()
    writer.join(timeout=10)
    return _Read(events, ended_at[0], body)


def _text(chunk: bytes | str) -> str:
    return chunk.decode() if isinstance(chunk, bytes) else chunk


def _changes(events: list[tuple[float, str, str]]) -> list[dict[str, str]]:
    return [json.loads(data) for _, kind, data in events if kind == "message"]


def test_tokens_are_coalesced_into_a_few_updates_a_second() -> None:
    def write(live: LiveText) -> None:
        text = " w0"
        for i in range(1, 40):  # 40 tokens in about 0.4 s
            time.sleep(0.01)
            text += f" w{i}"
            live.publish(text)

    changes = _changes(_read_while_writing(" w0", write).events)
    assert "".join(c.get("t", c.get("a", "")) for c in changes) == "".join(
        f" w{i}" for i in range(40)
    )
    # One update per MIN_GAP_S (0.1 s) at most, not one per token.
    assert 2 <= len(changes) <= 8, changes


def test_the_last_text_is_not_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_module, "MIN_GAP_S", 30.0)

    def write(live: LiveText) -> None:
        time.sleep(0.2)  # the stream has sent "first" and is in its gap
        live.publish("first and last")

    events, ended_at, _ = _read_while_writing("first", write)
    assert events[-1][1:] == ("done", "{}")
    assert _changes(events) == [{"t": "first"}, {"a": " and last"}]
    assert events[-1][0] - ended_at < 5, "the end waited out the coalescing gap"


def test_the_first_visible_text_is_not_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_module, "MIN_GAP_S", 30.0)
    published_at: list[float] = []

    def write(live: LiveText) -> None:
        time.sleep(0.2)  # the stream has sent the leading newline
        live.publish("\nHello")
        published_at.append(time.monotonic())
        time.sleep(1.0)

    events = _read_while_writing("\n", write).events
    assert _changes(events) == [{"t": "\n"}, {"a": "Hello"}]
    hello_at = next(at for at, kind, data in events if "Hello" in data)
    assert hello_at - published_at[0] < 0.5, "a reply's first words waited for the gap"


def test_unknown_keys_get_nothing() -> None:
    server = Flask("live-test")
    add_live_route(server)
    assert server.test_client().get("/lc-live/guessed-key").status_code == 404
