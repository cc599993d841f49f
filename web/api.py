"""The OpenAI-compatible API as Flask routes under /v1, beside the pages or alone (headless).

Only HTTP here: a bounded body read and decoded, handed to `llm.openai_api` (which checks it
and runs it on the app's engines), and its answer written back as JSON or server-sent events.
Who may call is decided before any of this, in web/access.py (host, origin, token, CORS).

A client that goes away mid-request is noticed at once, not at the next write: a thread
watches the connection's socket and sets the request's cancel event when it closes, so a
request waiting in the queue leaves it and a reply being written stops after its current
token (the worker is free for the next request within a few milliseconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, request

from llm.config import Config
from llm.openai_api import ApiError, OpenAIService, parse_chat, parse_completion, parse_embedding
from llm.openai_api.schema import MAX_BODY_BYTES

from .access import GuardedFlask, allowed_host_names, make_guarded_flask

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 0.05
_ENDPOINTS = {
    "models": ("GET",),
    "chat/completions": ("POST",),
    "completions": ("POST",),
    "embeddings": ("POST",),
}


class _ClientWatch:
    """Sets `cancel` when the client closes the connection of the current request."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.cancel = threading.Event()
        self._done = threading.Event()
        sock = environ.get("werkzeug.socket")  # Werkzeug's server: the connection's socket
        if isinstance(sock, socket.socket):
            thread = threading.Thread(
                target=self._watch, args=(sock,), name="api-client-watch", daemon=True
            )
            thread.start()

    def _watch(self, sock: socket.socket) -> None:
        while not self._done.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], WATCH_INTERVAL_S)
                if not readable:
                    continue
                if sock.recv(1, socket.MSG_PEEK) == b"":  # the client closed its side
                    self.cancel.set()
                return  # else: bytes of a next request; nothing more to learn here
            except (OSError, ValueError):  # reset, or closed under us
                self.cancel.set()
                return

    def stop(self) -> None:
        self._done.set()


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )


def _read_body() -> Any:
    """The request's JSON, read no further than MAX_BODY_BYTES."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES:,} bytes")
    data = request.stream.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is larger than {MAX_BODY_BYTES:,} bytes")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: [[[[...]]]] nested too deep
        raise ApiError(400, "the request body is not valid JSON", code="invalid_json") from None


def _stream(events: Iterator[bytes], watch: _ClientWatch) -> Response:
    def body() -> Iterator[bytes]:
        try:
            yield from events
        finally:  # also when the server stops writing to a client that left
            close = getattr(events, "close", None)
            if close:
                close()
            watch.stop()

    # Werkzeug writes each chunk as four small writes (size, CRLF, data, CRLF): without
    # TCP_NODELAY, Nagle's algorithm holds the rest of a token back until the client's ACK.
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(body(), mimetype="text/event-stream", headers=headers)


def _handle(work: Callable[[], Response]) -> Response:
    try:
        return work()
    except ApiError as exc:
        return _json(exc.body(), exc.status)
    except Exception:  # never Flask's HTML error page for an API client
        log.exception("API request failed")
        error = ApiError(500, "internal error (see the server's log)", kind="server_error")
        return _json(error.body(), 500)


def add_api_routes(server: GuardedFlask, service: OpenAIService) -> None:
    """Serve /v1 from `server` with `service`; the server's guards then judge /v1 requests
    as web/access.py describes."""
    server.serves_api = True

    def generate(parse: Callable[[Any], Any], run: Callable[..., Any]) -> Response:
        watch = _ClientWatch(request.environ)
        try:
            answer = run(parse(_read_body()), watch.cancel)
        except BaseException:
            watch.stop()
            raise
        if isinstance(answer, dict):
            watch.stop()
            return _json(answer)
        return _stream(answer, watch)

    def models() -> Response:
        return _handle(lambda: _json(service.models()))

    def chat() -> Response:
        return _handle(lambda: generate(parse_chat, service.chat))

    def completions() -> Response:
        return _handle(lambda: generate(parse_completion, service.complete))

    def embeddings() -> Response:
        return _handle(lambda: _json(service.embed(parse_embedding(_read_body()))))

    def other(rest: str) -> Response:
        if rest in _ENDPOINTS:
            allowed = ", ".join(_ENDPOINTS[rest])
            error = ApiError(405, f"/v1/{rest} takes {allowed}", code="method_not_allowed")
        else:
            error = ApiError(404, f"there is no endpoint /v1/{rest[:100]}", code="not_found")
        return _json(error.body(), error.status)

    server.add_url_rule("/v1/models", "api_models", models, methods=["GET"])
    server.add_url_rule("/v1/chat/completions", "api_chat", chat, methods=["POST"])
    server.add_url_rule("/v1/completions", "api_completions", completions, methods=["POST"])
    server.add_url_rule("/v1/embeddings", "api_embeddings", embeddings, methods=["POST"])
    any_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    server.add_url_rule("/v1/<path:rest>", "api_other", other, methods=any_method)
    server.add_url_rule("/v1", "api_root", lambda: other(""), methods=any_method)


def make_api_server(config: Config, service: OpenAIService) -> Flask:
    """The server of `python main.py --api --no-pages`: the API alone, behind the same host,
    origin and token checks as the pages (no Taipy)."""
    server = make_guarded_flask(
        "LocalChat API",
        access_token=config.access_token,
        title=config.title,
        allowed_hosts=allowed_host_names(config.host, config.allowed_hosts),
        cors_origins=config.api_cors_origins,
    )
    add_api_routes(server, service)
    server.add_url_rule(
        "/",
        "root",
        lambda: Response(
            "LocalChat's OpenAI-compatible API is at /v1 (the pages are off).\n",
            mimetype="text/plain",
        ),
    )
    return server


def serve_api(config: Config, server: Flask) -> None:
    """Run the headless server until interrupted (threads: each request its own)."""
    from werkzeug.serving import run_simple

    print(f"LocalChat API on http://{config.host}:{config.port}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        run_simple(config.host, config.port, server, threaded=True, use_reloader=False)
