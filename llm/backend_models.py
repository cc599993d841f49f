"""The models each configured backend offers, for a model picker: every server asked at once,
each answer kept for a while (`MAX_AGE_S`), asked again on demand.

A picker must never wait long on a server, nor lose the local models because one is down:
`refresh` waits at most `DEADLINE_S` in all. A server that has not answered by then is
listed as unreachable ("no answer within 3 s"); its request goes on in the background
(bounded by its own timeouts) and its answer replaces that line when it comes. A request
still running is never started twice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .errors import BackendUnreachableError, LocalChatError
from .remote import RemoteEngine, RemoteModelInfo

DEADLINE_S = 3.0  # the longest a picker waits for the servers, all together
MAX_AGE_S = 300.0  # an answer older than this is asked again when the picker is shown


@dataclass(frozen=True)
class BackendListing:
    """What one backend offers, as last heard."""

    backend: str
    base_url: str
    models: tuple[str, ...] = ()
    error: LocalChatError | None = None  # why there is no list (unreachable, refused key, ...)
    asked_at: float = 0.0  # time.monotonic() of the answer; 0: never answered
    asking: bool = False  # a request is on its way

    @property
    def known(self) -> bool:
        """Whether the server has answered (or failed) at least once."""
        return self.asked_at > 0


@dataclass
class _Ask:
    done: threading.Event = field(default_factory=threading.Event)


class BackendModels:
    """Thread-safe cache of every [[backends]] entry's /v1/models."""

    def __init__(
        self,
        config: Config,
        engine_for: Callable[[str], RemoteEngine],
        *,
        deadline_s: float = DEADLINE_S,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        """`engine_for(name)` gives the backend's engine (`Engines.remote`)."""
        self.config = config
        self._engine_for = engine_for
        self.deadline_s = deadline_s
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._listings = {b.name: BackendListing(b.name, b.base_url) for b in config.backends}
        self._asks: dict[str, _Ask] = {}

    def listings(self) -> list[BackendListing]:
        """What is known now, in config.toml's order; never waits."""
        with self._lock:
            return [self._listings[b.name] for b in self.config.backends]

    def stale(self) -> bool:
        """Whether a backend was never asked, or was asked more than `max_age_s` ago."""
        now = time.monotonic()
        return any(
            not listing.asking and (not listing.known or now - listing.asked_at > self.max_age_s)
            for listing in self.listings()
        )

    def refresh(self, *, force: bool = False) -> list[BackendListing]:
        """Ask every backend whose answer is missing or old (every one when `force`) and wait
        for the answers, `deadline_s` at most in all; then `listings()`."""
        now = time.monotonic()
        waits = []
        with self._lock:
            for backend in self.config.backends:
                listing = self._listings[backend.name]
                fresh = listing.known and now - listing.asked_at <= self.max_age_s
                ask = self._asks.get(backend.name)
                if ask is None and (force or not fresh):
                    ask = self._asks[backend.name] = _Ask()
                    self._listings[backend.name] = _replace(listing, asking=True)
                    threading.Thread(
                        target=self._ask,
                        args=(backend.name, ask),
                        name=f"models of {backend.name}",
                        daemon=True,
                    ).start()
                if ask is not None:
                    waits.append((backend.name, ask))
        deadline = now + self.deadline_s
        for name, ask in waits:
            if not ask.done.wait(max(deadline - time.monotonic(), 0)):
                self._no_answer_yet(name)
        return self.listings()

    def _ask(self, name: str, ask: _Ask) -> None:
        models: tuple[str, ...] = ()
        error: LocalChatError | None = None
        try:
            # The request's own timeout: a server that accepts and never answers ends too.
            found: list[RemoteModelInfo] = self._engine_for(name).list_models(
                timeout=max(self.deadline_s * 4, 10.0)
            )
            models = tuple(m.id for m in found)
        except LocalChatError as exc:
            error = exc
        except Exception as exc:  # a picker line, never a crash of the page
            error = LocalChatError(f"backend {name!r}: {type(exc).__name__}: {exc}")
        with self._lock:
            listing = self._listings[name]
            self._listings[name] = BackendListing(
                name, listing.base_url, models, error, time.monotonic(), asking=False
            )
            self._asks.pop(name, None)
        ask.done.set()

    def _no_answer_yet(self, name: str) -> None:
        with self._lock:
            listing = self._listings[name]
            if not listing.asking:  # it answered just now
                return
            error = BackendUnreachableError(
                f"cannot reach backend {name!r} at {listing.base_url}: no answer within "
                f"{self.deadline_s:g} s",
                code="backend_no_answer",
                backend=name,
                seconds=self.deadline_s,
            )
            self._listings[name] = _replace(
                listing, models=(), error=error, asked_at=time.monotonic()
            )


def _replace(listing: BackendListing, **changes: Any) -> BackendListing:
    return dataclasses.replace(listing, **changes)
