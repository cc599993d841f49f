"""The reply text stream (`pages/live.py`) over real HTTP through Flask's test client: what a
tab's EventSource receives while a reply grows, and that only a known key is served."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask import Flask

from pages import live as live_module
from pages.live import add_live_route, open_live


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
    server = Flask("live-test")
    add_live_route(server)
    key, live = open_live()
    live.publish("Paris")  # before the tab connects: it gets the text so far

    def write() -> None:
        for text in ("Paris is", "Paris is the capital", "Paris is the capital."):
            time.sleep(0.05)
            live.publish(text)
        live.publish("Paris is the capital!")  # not an append: replaces
        live.end()

    writer = threading.Thread(target=write)
    response = server.test_client().get(f"/lc-live/{key}", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    body = ""
    for chunk in response.response:  # read as the tab does, while the reply is written
        body += chunk.decode() if isinstance(chunk, bytes) else chunk
        if not writer.is_alive() and writer.ident is None:
            writer.start()
    writer.join(timeout=10)
    events = _events(body)
    assert events[-1] == ("done", "{}")
    changes = [json.loads(data) for kind, data in events[:-1]]
    assert changes[0] == {"t": "Paris"}
    text = ""
    for change in changes:
        text = change["t"] if "t" in change else text + change["a"]
    assert text == "Paris is the capital!"
    assert {"a": " is"} in changes  # growth is sent as what was added


def _read_while_writing(first: str, write: object) -> tuple[list[tuple[str, str]], float]:
    """The events a tab reads when a reply starts with `first` and `write(live)` goes on in a
    thread once the tab has it, and the seconds from the reply's end to the stream's end."""
    server = Flask("live-test")
    add_live_route(server)
    key, live = open_live()
    live.publish(first)
    ended_at: list[float] = []

    def run() -> None:
        write(live)  # type: ignore[operator]
        ended_at.append(time.monotonic())
        live.end()

    writer = threading.Thread(target=run)
    body = ""
    for chunk in server.test_client().get(f"/lc-live/{key}", buffered=False).response:
        body += chunk.decode() if isinstance(chunk, bytes) else chunk
        if writer.ident is None:
            writer.start()
    writer.join(timeout=10)
    return _events(body), time.monotonic() - ended_at[0]


def test_tokens_are_coalesced_into_a_few_updates_a_second() -> None:
    def write(live: live_module.LiveText) -> None:
        text = " w0"
        for i in range(1, 40):  # 40 tokens in about 0.4 s
            time.sleep(0.01)
            text += f" w{i}"
            live.publish(text)

    events, _ = _read_while_writing(" w0", write)
    changes = [json.loads(data) for kind, data in events if kind == "message"]
    assert "".join(c.get("t", c.get("a", "")) for c in changes) == "".join(
        f" w{i}" for i in range(40)
    )
    # One update per MIN_GAP_S (0.1 s) at most, not one per token.
    assert 2 <= len(changes) <= 8, changes


def test_the_last_text_is_not_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_module, "MIN_GAP_S", 30.0)

    def write(live: live_module.LiveText) -> None:
        time.sleep(0.2)  # the stream has sent "first" and is in its gap
        live.publish("first and last")

    events, after_end_s = _read_while_writing("first", write)
    assert events[-1] == ("done", "{}")
    assert [json.loads(data) for _, data in events[:-1]] == [{"t": "first"}, {"a": " and last"}]
    assert after_end_s < 5, "the end waited out the coalescing gap"


def test_unknown_keys_get_nothing() -> None:
    server = Flask("live-test")
    add_live_route(server)
    assert server.test_client().get("/lc-live/guessed-key").status_code == 404
