"""The language of each browser: chosen in the page, remembered in a cookie, labels per tab.

Taipy builds a page's elements once, with its labels in them, but renders them again at every
page request. So each page is built once per language (pages/__init__.py), and each request
is answered in the language of the browser's cookie (`LANGUAGE_COOKIE`); a browser without
one gets config.toml's `language`. The cookie is set by `GET /lc-language?to=ko`, which the
language switch opens in the same tab, and the page reloads in that language (the tab keeps
its Taipy state: sessionStorage holds its client id). No restart, no label as a page
variable, nothing extra at run time.

`TabLabels` is the `labels` mapping every page reads (`app().labels`): inside a callback or
a page request it gives the labels of that tab's language; while a page is built, those of
the language being built (`TabLabels.building`).

A cookie is input from a stranger: only a name in the known languages counts.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, has_app_context, has_request_context, redirect, request

LANGUAGE_COOKIE = "lc_language"
ROUTE = "/lc-language"
COOKIE_MAX_AGE_S = 400 * 24 * 3600  # the longest browsers keep a cookie
_PAGE_PATH = re.compile(r"/[A-Za-z0-9_-]{0,64}")
_building: contextvars.ContextVar[str | None] = contextvars.ContextVar("building", default=None)


class TabLabels(Mapping[str, str]):
    """The labels of the language in use where it is read (see the module doc)."""

    def __init__(self, by_language: Mapping[str, Mapping[str, str]], default: str) -> None:
        if default not in by_language:
            raise ValueError(f"no labels for the default language {default!r}")
        self.by_language = by_language
        self.default = default
        self._tabs: dict[str, str] = {}  # Taipy client id -> language
        self._lock = threading.Lock()

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.by_language)

    def valid(self, language: Any) -> str | None:
        """`language` if it is one of ours (from a cookie or a page: anything can come)."""
        return language if isinstance(language, str) and language in self.by_language else None

    def current(self) -> str:
        """The language being built, else the current tab's, else the request's cookie's."""
        building = _building.get()
        if building is not None:
            return building
        client = _client_id()
        if client:
            with self._lock:
                language = self._tabs.get(client)
            if language is not None:
                return language
        return self.from_request()

    def from_request(self) -> str:
        """The language of the browser making the current HTTP request (its cookie)."""
        if has_request_context():
            return self.valid(request.cookies.get(LANGUAGE_COOKIE)) or self.default
        return self.default

    def adopt_request_language(self) -> bool:
        """At a page load: the tab takes its browser's language; True if it changed."""
        client = _client_id()
        language = self.from_request()
        if not client:
            return False
        with self._lock:
            before = self._tabs.get(client)
            self._tabs[client] = language
        return before is not None and before != language

    @contextlib.contextmanager
    def building(self, language: str) -> Iterator[None]:
        """Labels of `language` while a page is built."""
        token = _building.set(language)
        try:
            yield
        finally:
            _building.reset(token)

    def __getitem__(self, key: str) -> str:
        return self.by_language[self.current()][key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_language[self.current()])

    def __len__(self) -> int:
        return len(self.by_language[self.current()])


def _client_id() -> str:
    """The Taipy client (tab) whose request or callback is running, or ""."""
    if not has_app_context():
        return ""
    client = getattr(g, "client_id", None)
    return client if isinstance(client, str) else ""


def add_language_route(flask_app: Flask, languages: tuple[str, ...]) -> None:
    """`GET /lc-language?to=ko`: remember the language in this browser, then back to the page
    it came from (only a page path of this app: never another site)."""

    @flask_app.route(ROUTE)
    def _set_language() -> Response:
        back = _page_path(request.headers.get("Referer", ""), request.host)
        response = redirect(back, code=303)
        language = request.args.get("to", "")
        if language in languages:
            response.set_cookie(
                LANGUAGE_COOKIE,
                language,
                max_age=COOKIE_MAX_AGE_S,
                samesite="Lax",
                httponly=True,
                secure=request.is_secure,
            )
        return response


def _page_path(referer: str, host: str) -> str:
    parts = urlsplit(referer)
    if parts.netloc != host or not _PAGE_PATH.fullmatch(parts.path or "/"):
        return "/"
    return parts.path or "/"
