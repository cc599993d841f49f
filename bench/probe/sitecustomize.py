"""Benchmark probe, loaded by every Python process started with `bench/probe` on PYTHONPATH.

It does nothing unless LOCALCHAT_BENCH_PROBE names a folder. Then it wraps
`multiprocessing.connection.Connection.send/recv` (the pipe between `llm.engine.Engine` and its
worker process) to timestamp, with the wall clock, every reply event that crosses it:
- the worker's `send` of a text event = the moment a token's text leaves llama.cpp's loop;
- the app's `recv` of it = the moment the app process has it.
One JSON line per event goes to `<folder>/probe-<pid>.jsonl` (written when a reply ends, so
nothing is written while tokens flow). With LOCALCHAT_BENCH_IGNORE_EOS=1 the worker also turns on
`ignore_eos` for every generate request, so an unmodified app generates exactly max_tokens.

Neither llm/ nor main.py knows about this; it is how the bench sees inside the running app.
"""

from __future__ import annotations

import json
import os
import time

_FOLDER = os.environ.get("LOCALCHAT_BENCH_PROBE")


def _install(folder: str) -> None:
    from multiprocessing import connection

    base = connection._ConnectionBase
    original_send, original_recv = base.send, base.recv
    ignore_eos = os.environ.get("LOCALCHAT_BENCH_IGNORE_EOS") == "1"
    pending: list[dict] = []
    path = os.path.join(folder, f"probe-{os.getpid()}.jsonl")

    def note(direction: str, obj: object, at: float) -> None:
        if not isinstance(obj, dict) or obj.get("type") not in ("start", "text", "done"):
            return
        event = {"t": at, "dir": direction, "type": obj["type"]}
        if obj["type"] == "text":
            event["text"] = obj.get("text", "")
        elif obj["type"] == "done":
            event["figures"] = obj.get("figures")
            event["finish_reason"] = obj.get("finish_reason")
        pending.append(event)
        if obj["type"] == "done":
            with open(path, "a", encoding="utf-8") as f:
                f.writelines(json.dumps(e) + "\n" for e in pending)
            pending.clear()

    def send(self, obj):  # type: ignore[no-untyped-def]
        # Noted before the write: the time the text was ready, and a reply's events are on
        # disk before its "done" event can reach anyone who then reads the file.
        note("send", obj, time.time())
        return original_send(self, obj)

    def recv(self):  # type: ignore[no-untyped-def]
        obj = original_recv(self)
        at = time.time()
        if ignore_eos and isinstance(obj, dict) and obj.get("op") == "generate":
            obj["params"] = {**obj.get("params", {}), "ignore_eos": True}
        note("recv", obj, at)
        return obj

    base.send, base.recv = send, recv


if _FOLDER:
    _install(_FOLDER)
