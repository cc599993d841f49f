"""The servers' model lists for the picker (llm/backend_models.py), over real HTTP on
127.0.0.1: a server that answers, one with nothing listening, one that accepts and never
answers (said within the deadline, its list filled in once it answers), and the cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from support.browser import free_port
from support.local_http import serving

from llm.config import Backend, Config
from llm.engines import Engines

ASKED: list[str] = []
RELEASE = threading.Event()


class _Models(BaseHTTPRequestHandler):
    models = ("alpha", "org/beta")
    hold = False

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        ASKED.append(type(self).__name__)
        if self.hold:
            RELEASE.wait(20)  # accepts, then says nothing until released
        body = json.dumps({"data": [{"id": m, "object": "model"} for m in self.models]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Slow(_Models):
    models = ("late",)
    hold = True


@pytest.fixture
def servers() -> Iterator[tuple[str, str]]:
    ASKED.clear()
    RELEASE.clear()
    with serving(_Models) as fast, serving(_Slow) as slow:
        yield fast, slow
        RELEASE.set()


def _engines(fast: str, slow: str, **options: float) -> Engines:
    config = Config(
        backends=(
            Backend("fast", f"{fast}/v1"),
            Backend("gone", f"http://127.0.0.1:{free_port()}/v1"),
            Backend("slow", f"{slow}/v1"),
        )
    )
    engines = Engines(config, local=object())  # type: ignore[arg-type]
    for name, value in options.items():
        setattr(engines.backend_models, name, value)
    return engines


def test_each_server_is_listed_or_said_unreachable_within_the_deadline(
    servers: tuple[str, str],
) -> None:
    models = _engines(*servers, deadline_s=1.0).backend_models
    before = models.listings()
    assert [(b.backend, b.known, b.models) for b in before] == [
        ("fast", False, ()),
        ("gone", False, ()),
        ("slow", False, ()),
    ]
    assert models.stale()
    started = time.monotonic()
    fast, gone, slow = models.refresh()
    took = time.monotonic() - started
    assert took < 2.0  # the deadline, not the slow server's silence
    assert fast.models == ("alpha", "org/beta") and fast.error is None
    assert gone.error is not None and gone.error.code == "backend_unreachable"
    assert "connection refused" in str(gone.error)
    assert slow.error is not None and slow.error.code == "backend_no_answer"
    assert slow.asking and slow.models == ()
    RELEASE.set()  # the slow server answers at last: its list replaces the line
    deadline = time.monotonic() + 10
    while models.listings()[2].asking and time.monotonic() < deadline:
        time.sleep(0.02)
    slow = models.listings()[2]
    assert slow.models == ("late",) and slow.error is None and not slow.asking


def test_answers_are_kept_until_old_or_refreshed(servers: tuple[str, str]) -> None:
    RELEASE.set()
    models = _engines(*servers, deadline_s=2.0).backend_models
    models.refresh()
    asked = len(ASKED)
    assert asked == 2  # fast and slow (nothing listens for "gone")
    assert not models.stale()
    models.refresh()  # fresh answers: nobody is asked
    assert len(ASKED) == asked
    models.refresh(force=True)  # the picker's refresh button
    assert len(ASKED) == asked + 2
    models.max_age_s = 0.0
    time.sleep(0.01)
    assert models.stale()


def test_a_request_on_its_way_is_not_started_twice(servers: tuple[str, str]) -> None:
    models = _engines(*servers, deadline_s=0.3).backend_models
    models.refresh()
    models.refresh(force=True)  # the slow one is still being asked
    assert ASKED.count("_Slow") == 1
    RELEASE.set()
