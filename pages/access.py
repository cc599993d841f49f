"""Access control for the web server: loopback only, unless an access token guards it.

LocalChat listens on 127.0.0.1 by default. Listening on any other address needs an access
token (`LOCALCHAT_ACCESS_TOKEN` or `[app] access_token`); with one set, every request — pages,
files and the Socket.IO connection alike — needs a cookie set by a small login form (or an
`Authorization: Bearer <token>` header). The check wraps the whole WSGI app, outside the
Socket.IO middleware, so nothing Taipy serves can be reached around it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from flask import Flask

from llm.errors import ConfigError

COOKIE = "localchat_access"
LOGIN_PATH = "/localchat-login"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_listen_address(host: str, token: str) -> None:
    """Refuse to serve beyond this machine without an access token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"listening on {host} makes LocalChat reachable from other machines: set an access "
            "token first (LOCALCHAT_ACCESS_TOKEN=... or access_token under [app] in config.toml)"
        )


def _cookie_value(token: str) -> str:
    # The cookie holds a digest, so the token itself is never stored in a browser.
    return hashlib.sha256(f"localchat:{token}".encode()).hexdigest()


_FORM = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{background:#0d0714;color:#eee;font-family:sans-serif;display:flex;
justify-content:center;margin-top:15vh}}form{{background:#1b1226;padding:2em;border-radius:12px}}
input{{padding:.5em;margin:.5em 0;width:18em}}button{{background:#ff462b;color:#140a1e;border:0;
padding:.6em 1.2em;border-radius:8px;font-weight:bold}}.error{{color:#ff8a75}}</style></head>
<body><form method="post" action="{action}"><h2>{title}</h2>
<p>This LocalChat needs its access token.</p>{error}
<input type="password" name="token" id="token" autofocus placeholder="Access token"><br>
<button type="submit" id="login">Enter</button></form></body></html>"""


class GuardedFlask(Flask):
    """A Flask app whose every request (Socket.IO included) passes the access check."""

    access_token: str = ""
    title: str = "LocalChat"

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not self.access_token or self._allowed(environ):
            return super().__call__(environ, start_response)
        if environ.get("PATH_INFO") == LOGIN_PATH and environ.get("REQUEST_METHOD") == "POST":
            return self._login(environ, start_response)
        return self._form(start_response, error=False)

    def _allowed(self, environ: dict[str, Any]) -> bool:
        expected = _cookie_value(self.access_token)
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value, expected):
                return True
        bearer = environ.get("HTTP_AUTHORIZATION", "")
        return bearer.startswith("Bearer ") and hmac.compare_digest(
            bearer[7:].encode(), self.access_token.encode()
        )

    def _login(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            size = min(int(environ.get("CONTENT_LENGTH") or 0), 4096)
        except ValueError:
            size = 0
        body = environ["wsgi.input"].read(size).decode("utf-8", "replace")
        given = parse_qs(body).get("token", [""])[0]
        if not hmac.compare_digest(given.encode(), self.access_token.encode()):
            return self._form(start_response, error=True)
        cookie = f"{COOKIE}={_cookie_value(self.access_token)}; Path=/; HttpOnly; SameSite=Strict"
        start_response("303 See Other", [("Location", "/"), ("Set-Cookie", cookie)])
        return [b""]

    def _form(self, start_response: Callable, *, error: bool) -> Iterable[bytes]:
        page = _FORM.format(
            title=html.escape(self.title),
            action=LOGIN_PATH,
            error='<p class="error">Wrong token.</p>' if error else "",
        ).encode()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))]
        start_response("401 Unauthorized", headers)
        return [page]


def make_server(name: str, *, access_token: str, title: str) -> Flask:
    """The Flask app Taipy runs on, guarded when a token is set."""
    # No static folder: Flask would serve `static/` under wherever the app was started from.
    server = GuardedFlask(name, static_folder=None)
    server.access_token = access_token
    server.title = title
    return server
