"""A real OpenAI-compatible server for the tests: llama-cpp-python's own
(`python -m llama_cpp.server`), on a free 127.0.0.1 port, serving scripted models.

`llama_cpp_server` starts it, waits (bounded) until /v1/models answers, and stops it when the
block ends. Several models go through the server's JSON config file; it loads the one a
request names (one at a time).

`buffering_proxy` stands in front of a server the way a buffering reverse proxy does (nginx's
default `proxy_buffering on`): it passes each answer on only once it is complete, so a streamed
reply arrives in one burst.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from .browser import free_port
from .local_http import serving

READY_TIMEOUT_S = 90


@dataclass
class Server:
    """A running server: its process, base URL (up to /v1) and log file."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


@contextlib.contextmanager
def llama_cpp_server(
    model: Path,
    alias: str,
    log: Path,
    *,
    api_key: str | None = None,
    n_ctx: int = 1024,
    extra: tuple[str, ...] = (),
    more_models: Sequence[tuple[Path, str]] = (),
    interrupt_requests: bool = True,
) -> Iterator[Server]:
    """`python -m llama_cpp.server` serving `model` as `alias` (and `more_models`, each a
    (path, alias) pair), ready when /v1/models answers. By default the server ends a streaming
    reply early (a bare [DONE]) when another request arrives; `interrupt_requests=False`
    makes it queue them instead."""
    port = free_port()
    if more_models:
        settings = {
            "host": "127.0.0.1",
            "port": port,
            "api_key": api_key,
            "interrupt_requests": interrupt_requests,
            "models": [
                {"model": str(path), "model_alias": name, "chat_format": "chatml", "n_ctx": n_ctx}
                for path, name in [(model, alias), *more_models]
            ],
        }
        config = log.with_suffix(".json")
        config.write_text(json.dumps(settings), encoding="utf-8")
        command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)]
    else:
        command = [
            *(sys.executable, "-m", "llama_cpp.server", "--model", str(model)),
            *("--host", "127.0.0.1", "--port", str(port), "--chat_format", "chatml"),
            *("--model_alias", alias, "--n_ctx", str(n_ctx)),
            *(("--api_key", api_key) if api_key else ()),
            *(() if interrupt_requests else ("--interrupt_requests", "false")),
            *extra,
        ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}/v1", log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited:\n{log.read_text()[-2000:]}")
            try:
                request = urllib.request.Request(
                    f"{server.base_url}/models", headers={"Authorization": f"Bearer {api_key}"}
                )
                with urllib.request.urlopen(request, timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama_cpp.server not ready in {READY_TIMEOUT_S} s:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def buffering_proxy(upstream: str) -> Iterator[str]:
    """A proxy on 127.0.0.1 to `upstream` (a base URL up to /v1) that sends each answer only
    when it is complete; yields its own base URL."""
    prefix = urllib.request.urlparse(upstream).path

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            url = upstream + self.path.removeprefix(prefix)
            request = urllib.request.Request(url, body, headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, kind, data = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as error:
                status, kind, data = error.code, error.headers, error.read()
            self.send_response(status)
            self.send_header("Content-Type", kind.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

    with serving(Handler) as url:
        yield url + prefix
