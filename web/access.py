"""Access control for the web server: who may reach the app, and from which web pages.

Three checks wrap the whole WSGI app, outside the Socket.IO middleware, so nothing Taipy serves
(pages, files, uploads, the websocket) can be reached around them, in this order:
1. **Host**: only the names the app is meant to be reached by (loopback names, the configured
   host, `[app] allowed_hosts`, and when listening on all interfaces this machine's own
   addresses and name). Any other `Host` is a DNS-rebinding page: a foreign site whose name
   was re-pointed at this machine, running in the user's browser. 400, on every route.
2. **Origin**: a request that can change something (not GET/HEAD/OPTIONS) from a browser page
   of another site is refused (403): its `Origin`, or without one its `Referer`, must be the
   app's own. A request with neither is not a cross-site browser request (curl, a script)
   and is judged by the token alone. Cross-site "simple" requests (a form posting a file to
   the upload route) need no preflight, so this is their only guard.
3. **Token**: LocalChat listens on 127.0.0.1 by default; any other address needs an access
   token (`LOCALCHAT_ACCESS_TOKEN` or `[app] access_token`). With one set, every request needs
   a cookie set by a small login form (or an `Authorization: Bearer <token>` header).

The OpenAI API under `/v1` (when it is on) is judged by the same host and token, with answers
in OpenAI's JSON instead of the login page (401), and by `Origin` alone: a browser page of
another site is refused (403) unless `[api] cors_origins` lists it, in which case its CORS
preflight (which carries no token) is answered and its responses carry the CORS headers. A
request with no `Origin` (a script, the `openai` client) is judged by the token alone.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
from flask import Flask

from llm.errors import ConfigError

COOKIE = "localchat_access"
LOGIN_PATH = "/localchat-login"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API_PREFIX = "/v1"
# Request headers a listed origin's preflight may ask for (the openai JS client sends its own
# x-stainless-* headers); anything else gets the two it needs.
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]+(\s*,\s*[A-Za-z0-9-]+)*")
_API_ALLOWED_HEADERS = "authorization, content-type"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _host_name(host: str) -> str:
    """The host name of a `Host` header or an address: lower case, no port, no brackets."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:5000
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:port (an IPv6 address without brackets has several)
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def allowed_host_names(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The names a `Host` header may carry: loopback, the address the app listens on, the
    configured extras and, when it listens on all interfaces (a LAN), this machine's own
    addresses and names."""
    names = {*LOOPBACK_NAMES, _host_name(listen_host), *(_host_name(h) for h in extra)}
    if listen_host in ("0.0.0.0", "::", ""):
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(_host_name(address.address.split("%", 1)[0]))
        names.update(_host_name(n) for n in (socket.gethostname(), socket.getfqdn()) if n)
    return frozenset(names)


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


def _refuse(start_response: Callable, status: str, text: str) -> Iterable[bytes]:
    body = (text + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def _same_origin(environ: dict[str, Any]) -> bool:
    """Whether a state-changing request comes from one of the app's own pages (or from no
    browser page at all)."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        referer = environ.get("HTTP_REFERER")
        if referer is None:
            return True  # not a cross-site browser request: the token decides
        origin = referer
    parts = urlsplit(origin)
    host = environ.get("HTTP_HOST", "")
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def _api_refuse(
    start_response: Callable, status: str, message: str, kind: str, extra: list | None = None
) -> Iterable[bytes]:
    """A refusal in OpenAI's error shape, which API clients show as it is."""
    error = {"message": message, "type": kind, "param": None, "code": None}
    body = json.dumps({"error": error}).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers + (extra or []))
    return [body]


def _is_api(environ: dict[str, Any]) -> bool:
    path = environ.get("PATH_INFO", "")
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class GuardedFlask(Flask):
    """A Flask app whose every request (Socket.IO included) passes the host, origin and token
    checks."""

    access_token: str = ""
    title: str = "LocalChat"
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_NAMES)
    serves_api: bool = False  # /v1 routes added (web/api.py): judged by `_api_call`
    cors_origins: frozenset[str] = frozenset()  # pages of other sites allowed to call /v1

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if _host_name(environ.get("HTTP_HOST", "")) not in self.allowed_hosts:
            return _refuse(start_response, "400 Bad Request", "unknown host name")
        if self.serves_api and _is_api(environ):
            return self._api_call(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET") not in SAFE_METHODS and not _same_origin(environ):
            return _refuse(start_response, "403 Forbidden", "refused: a page of another site")
        if not self.access_token or self._allowed(environ):
            return super().__call__(environ, start_response)
        if environ.get("PATH_INFO") == LOGIN_PATH and environ.get("REQUEST_METHOD") == "POST":
            return self._login(environ, start_response)
        return self._form(start_response, error=False)

    def _api_call(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        listed = origin is not None and origin in self.cors_origins
        if origin is not None and not listed and not _same_origin(environ):
            return _api_refuse(
                start_response,
                "403 Forbidden",
                f"requests from web pages of {origin[:100]} are refused: list the origin in "
                "[api] cors_origins to allow them",
                "permission_error",
            )
        cors = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")] if listed else []
        if listed and environ.get("REQUEST_METHOD") == "OPTIONS":
            return self._preflight(environ, start_response, cors)
        if self.access_token and not self._allowed(environ):
            return _api_refuse(
                start_response,
                "401 Unauthorized",
                "a valid access token is needed: send it as 'Authorization: Bearer <token>' "
                "(the app's access token)",
                "authentication_error",
                [("WWW-Authenticate", "Bearer"), *cors],
            )
        if not cors:
            return super().__call__(environ, start_response)

        def with_cors(status: str, headers: list, exc_info: Any = None) -> Any:
            return start_response(status, [*headers, *cors], exc_info)

        return super().__call__(environ, with_cors)

    @staticmethod
    def _preflight(
        environ: dict[str, Any], start_response: Callable, cors: list
    ) -> Iterable[bytes]:
        asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").strip()
        headers = asked if len(asked) <= 1000 and _HEADER_LIST.fullmatch(asked) else ""
        start_response(
            "204 No Content",
            [
                *cors,
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                ("Access-Control-Allow-Headers", headers or _API_ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "600"),
                ("Content-Length", "0"),
            ],
        )
        return [b""]

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


def make_guarded_flask(
    name: str,
    *,
    access_token: str,
    title: str,
    allowed_hosts: Iterable[str] = LOOPBACK_NAMES,
    cors_origins: Iterable[str] = (),
) -> GuardedFlask:
    """The Flask app Taipy runs on: host and origin checks always, the token when one is set;
    `cors_origins` may call the API under /v1 once it is added (web/api.py)."""
    # No static folder: Flask would serve `static/` under wherever the app was started from.
    server = GuardedFlask(name, static_folder=None)
    server.access_token = access_token
    server.title = title
    server.allowed_hosts = frozenset(allowed_hosts)
    server.cors_origins = frozenset(cors_origins)
    return server
