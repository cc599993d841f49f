"""Chat templates from model files, rendered in a helper process with hard limits.

Why: the template stored in a GGUF file is code from whoever made the file. Jinja's sandbox
stops attribute escapes, not CPU or memory: two nested `range(100000)` loops run for hours,
`'A' * 3000000000` takes gigabytes. Such a template is rendered in a small long-lived child
process (`llm.template_sandbox.main`) whose address space is capped at `MEMORY_BYTES`;
the caller waits at most `TIME_LIMIT_S` for the answer and kills and restarts the child past
it, and refuses an answer longer than the conversation allows. A template that hit a limit is
remembered as broken for the rest of the process, so it costs that wait once, not every turn.
Every failure is a `jinja2.TemplateError`: `render_prompt` then falls back to ChatML with the
warning any broken template gets.

Each process that renders such templates (the web app, the inference worker, the command line)
has its own child, so a hung template never holds up another process's work, and the worker's
loaded model never depends on one. Built-in templates are LocalChat's own and render in-process.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import jinja2

from .child_process import child_connection, start_child

TIME_LIMIT_S = 2.0
MEMORY_BYTES = 1024 * 1024 * 1024
# A prompt holds its messages once, plus the template's own text.
TEMPLATE_TEXT_CHARS = 1_000_000


class TemplateLimitError(jinja2.TemplateError):
    """A template went past a limit (time, memory, output size) or its helper failed."""


def output_limit(messages: Sequence[dict[str, str]]) -> int:
    """The longest rendered prompt accepted for `messages` (twice the content for templates
    that repeat a message, plus the template's own text)."""
    return 2 * sum(len(m["content"]) for m in messages) + TEMPLATE_TEXT_CHARS


class _Sandbox:
    """The child process of this process, started on first use; one render at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._broken: dict[str, str] = {}  # template digest -> why it failed a limit

    def warm(self) -> None:
        """Start the child now (it imports Jinja while the caller goes on)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> Connection:
        if self._process is None or self._process.poll() is not None or self._conn is None:
            self._stop()
            self._process, self._conn = start_child("llm.template_sandbox")
        return self._conn

    def _stop(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()

    def render(self, request: dict[str, Any]) -> list[tuple[str, bool]]:
        digest = hashlib.sha256(request["template"].encode("utf-8", "replace")).hexdigest()
        with self._lock:
            if digest in self._broken:
                raise TemplateLimitError(self._broken[digest])
            conn = self._ensure()
            try:
                conn.send(request)
                answered = conn.poll(TIME_LIMIT_S)
                reply = conn.recv() if answered else None
            except (OSError, EOFError):
                self._stop()
                raise TemplateLimitError("the template's helper process stopped") from None
            if reply is None:
                reply = ("limit", f"it took longer than {TIME_LIMIT_S:g} s")
            kind, value = reply
            if kind == "limit":  # the child is stopped (or stops itself): a fresh one next
                self._stop()
                self._broken[digest] = value
                raise TemplateLimitError(value)
        if kind == "error":
            raise jinja2.TemplateError(value)
        return value

    def close(self) -> None:
        with self._lock:
            self._stop()


_sandbox = _Sandbox()


def render_segments_limited(
    template: str,
    bos_token: str,
    eos_token: str,
    messages: Sequence[dict[str, str]],
    add_generation_prompt: bool = True,
) -> list[tuple[str, bool]]:
    """`prompts.render_segments` run in the helper process, within the limits."""
    return _sandbox.render(
        {
            "template": template,
            "bos_token": bos_token,
            "eos_token": eos_token,
            "messages": [dict(m) for m in messages],
            "max_chars": output_limit(messages),
            "add_generation_prompt": bool(add_generation_prompt),
        }
    )


def warm() -> None:
    """Start this process's helper now, so the first render does not wait for it."""
    _sandbox.warm()


def close() -> None:
    """Stop this process's helper (it also stops by itself when this process ends)."""
    _sandbox.close()


# The child ------------------------------------------------------------------------------------


def _answer(request: dict[str, Any]) -> tuple[str, Any]:
    from .template_render import render_segments

    segments = render_segments(
        request["template"],
        request["bos_token"],
        request["eos_token"],
        request["messages"],
        request.get("add_generation_prompt", True),
    )
    if sum(len(text) for text, _ in segments) > request["max_chars"]:
        return ("limit", "its output was longer than the conversation allows")
    return ("ok", segments)


def serve(conn: Connection) -> None:
    """The child's loop: render requests until the parent goes away."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            reply = _answer(request)
        except MemoryError:
            reply = ("limit", f"it needed more than {MEMORY_BYTES // 2**20} MB of memory")
        except RecursionError:
            reply = ("limit", "it recursed too deeply")
        except jinja2.TemplateError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # a template can raise anything: it is a bad template
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, MemoryError):
            return
        if reply[0] == "limit":
            return  # a fresh child next time: nothing of this one's memory state is kept


def main() -> None:
    """The child process's entry point (`child_process.start_child`)."""
    with contextlib.suppress(KeyboardInterrupt):
        serve(child_connection())


if __name__ == "__main__":
    main()
