"""The reply text stream (`pages/live.py`) over real HTTP through Flask's test client: what a
tab's EventSource receives while a reply grows, and that only a known key is served."""

from __future__ import annotations

import json
import threading
import time

from flask import Flask

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


def test_unknown_keys_get_nothing() -> None:
    server = Flask("live-test")
    add_live_route(server)
    assert server.test_client().get("/lc-live/guessed-key").status_code == 404
