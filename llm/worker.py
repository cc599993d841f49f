"""The inference worker process: owns the llama.cpp model so a native crash cannot take the
app down. Started by `llm.engine.Engine` through `child_process.start_child` (`main`, a
socket as its argument).

Protocol (dicts over a multiprocessing Connection): requests have an "op"; replies a "type".
  load      {path, n_ctx, n_threads, n_batch, untrusted_template}
                        -> loaded {n_ctx, n_threads, n_threads_batch} (llama.cpp's own
                           figures) | error {message}
  tokenize  {messages, format, open_reply}      -> tokens {ids, text, warnings} | error
  generate  {messages, format, params, keep_from, open_reply}
            -> start {...} then text {text}* then done {finish_reason, figures} | error;
            with open_reply (the text of a reply to continue), the prompt ends with that
            text left open, so only what follows it in llama.cpp's cache is evaluated;
            then, if no request waits, the worker evaluates the start of the next turn
            (the end of this reply and the user header) while the user types
  cancel    (only while generating)              ends the reply after the current token
  exit
"""

from __future__ import annotations

import contextlib
import traceback
from multiprocessing.connection import Connection
from typing import Any

from . import template_sandbox
from .child_process import child_connection
from .errors import LocalChatError, PromptError
from .history import trim_history
from .prompts import ChatFormat, Message, render_prompt

NEXT_REQUEST_S = 0.1


class _Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.llm: Any = None
        self.pending: list[dict[str, Any]] = []

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        from .llama_driver import context_threads, make_llamacpp

        self.unload()  # free the old model first: two may not fit in memory
        try:
            self.llm = make_llamacpp(
                request["path"],
                n_ctx=request["n_ctx"],
                n_threads=request["n_threads"],
                n_batch=request["n_batch"],
            )
        except Exception as exc:
            message = str(exc).split("\n")[0] or type(exc).__name__
            return {"type": "error", "message": f"llama.cpp could not load the model: {message}"}
        if request.get("untrusted_template"):
            template_sandbox.warm()  # its helper starts now, not on the first message
        n_threads, n_threads_batch = context_threads(self.llm.client)
        return {
            "type": "loaded",
            "n_ctx": self.llm.client.n_ctx(),
            "n_threads": n_threads,
            "n_threads_batch": n_threads_batch,
        }

    def unload(self) -> None:
        """Free the loaded model's memory now, not whenever Python collects the object."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.close()

    def render(self, messages: list[Message], fmt: ChatFormat, open_reply: str = ""):
        from .llama_driver import tokenize_segments

        rendered = render_prompt(fmt, messages, open_reply=open_reply)
        return rendered, tokenize_segments(self.llm.client, rendered.segments)

    def tokenize(self, request: dict[str, Any]) -> dict[str, Any]:
        open_reply = request.get("open_reply", "")
        rendered, ids = self.render(request["messages"], request["format"], open_reply)
        return {"type": "tokens", "ids": ids, "text": rendered.text, "warnings": rendered.warnings}

    def should_stop(self) -> bool:
        while self.conn.poll():
            message = self.conn.recv()
            if message.get("op") == "cancel":
                return True
            self.pending.append(message)  # not expected mid-reply; handled afterwards
        return False

    def generate(self, request: dict[str, Any]) -> None:
        params: dict[str, Any] = request["params"]
        fmt: ChatFormat = request["format"]
        n_ctx = self.llm.client.n_ctx()
        budget = n_ctx - params["max_tokens"]
        if budget < 1:
            raise PromptError(  # as the remote engine: refused, nothing failed
                f"max_tokens {params['max_tokens']} leaves no room for the prompt in the "
                f"context of {n_ctx} tokens"
            )
        cache: dict[int, tuple[Any, list[int]]] = {}
        open_reply: str = request.get("open_reply", "")

        def count(kept: list[Message]) -> int:
            rendered, ids = self.render(kept, fmt, open_reply)
            cache[len(kept)] = (rendered, ids)
            return len(ids)

        trimmed = trim_history(request["messages"], count, budget, keep_from=request["keep_from"])
        rendered, ids = cache[len(trimmed.messages)]
        self.conn.send(
            {
                "type": "start",
                "prompt_tokens": len(ids),
                "dropped_turns": trimmed.dropped_turns,
                "first_turn": trimmed.first_turn,
                "format": rendered.format.name,
                "warnings": rendered.warnings,
            }
        )
        # The caller's own stop strings (the API's `stop`) end the reply as the format's do.
        sampling = {k: v for k, v in params.items() if k not in ("max_tokens", "stop")}
        stop = [*rendered.format.stop, *params.get("stop", ())]
        reply: list[str] = []
        for text in self.llm.stream(
            rendered.text,
            stop=stop,
            prompt_tokens=ids,
            should_stop=self.should_stop,
            max_tokens=params["max_tokens"],
            **sampling,
        ):
            if text:
                reply.append(text)
                self.conn.send({"type": "text", "text": text})
        info = self.llm.last_info
        self.conn.send({"type": "done", **info, "dropped_turns": trimmed.dropped_turns})
        # The pause before the next message is used, unless a request comes at once (one-shot
        # callers such as `python -m llm ask` close the engine right after the reply).
        if not self.pending and not self.conn.poll(NEXT_REQUEST_S):
            text = open_reply + "".join(reply)
            history = [*trimmed.messages, {"role": "assistant", "content": text}]
            try:
                self.prefill_next_turn(history, fmt)
            except Exception:  # only a head start, and the reply is done: never an answer
                self.llm.client.n_tokens = 0  # the next prompt is evaluated from scratch

    def prefill_next_turn(self, history: list[Message], fmt: ChatFormat) -> None:
        """Evaluate the start of the next prompt, which does not depend on the next message: the
        end of this reply and the template's user header. A follow-up then waits only for its
        own text; a prompt that turns out different just re-evaluates from where it differs."""
        from .llama_driver import common_prefix, prefill

        def ids(text: str) -> list[int]:
            return self.render([*history, {"role": "user", "content": text}], fmt)[1]

        first = ids("a")
        known = common_prefix(first, ids("b"))
        # One token less: the last common one might merge with a message's first characters.
        if known > 1:
            prefill(self.llm.client, first[: known - 1])

    def serve(self) -> None:
        while True:
            request = self.pending.pop(0) if self.pending else self.conn.recv()
            op = request.get("op")
            if op == "exit":
                return
            if op == "cancel":
                continue  # arrived after the reply ended
            try:
                if op == "load":
                    self.conn.send(self.load(request))
                elif self.llm is None:
                    self.conn.send({"type": "error", "message": "no model is loaded"})
                elif op == "tokenize":
                    self.conn.send(self.tokenize(request))
                elif op == "generate":
                    self.generate(request)
                else:
                    self.conn.send({"type": "error", "message": f"unknown request {op!r}"})
            except LocalChatError as exc:
                # "refused": the prompt itself cannot be taken (too long), nothing failed.
                refused = isinstance(exc, PromptError)
                self.conn.send({"type": "error", "message": str(exc), "refused": refused})
            except Exception as exc:
                detail = traceback.format_exc(limit=3)
                self.conn.send(
                    {"type": "error", "message": f"{type(exc).__name__}: {exc}", "detail": detail}
                )


def serve(conn: Connection) -> None:
    """Entry point of the worker process. When the app goes away (its end of the connection
    closes, e.g. after a kill -9), the worker ends quietly at its next read or write."""
    with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):
        _Worker(conn).serve()


def main() -> None:
    """The child process's entry point (`child_process.start_child`)."""
    serve(child_connection())


if __name__ == "__main__":
    main()
