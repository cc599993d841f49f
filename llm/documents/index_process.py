"""Indexing in a helper process, within limits, yielding to replies.

Why a process: documents are hostile. The helper (`llm.documents.index_helper`) runs the
`Indexer` at low CPU priority with its address space capped, so a file that would eat the
machine's memory fails alone. It tells the
parent when it starts and finishes reading each file; the parent kills it when one file takes
longer than `FILE_TIME_LIMIT_S` to read (a parser stuck in C code cannot be interrupted from
inside), records that file as unreadable, and starts a new helper, which carries on from what is
stored. A helper that crashes on a file is handled the same way.

Yielding: the parent asks `is_busy()` (e.g. "is the engine generating?") five times a second
and tells the helper to pause or resume; the helper checks between batches of 32 passages
(about 30 ms of work with the default embedder), so a reply runs at full speed. Cancel stops
at the next batch; the file being embedded is finished or dropped whole.

`run_indexing` is the parent side; it blocks until the run ends. `IndexingService` runs it on a
thread per collection for the app, and resumes runs an app restart interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..child_process import start_child
from ..config import Config
from .errors import DocumentsError

FILE_TIME_LIMIT_S = 120.0  # reading one file; the loaders' own deadline (60 s) comes first
POLL_S = 0.2
MAX_RESTARTS = 20  # helpers killed or crashed in one run before the run gives up


@dataclasses.dataclass
class _Run:
    process: subprocess.Popen[bytes]
    conn: Connection
    reading: str = ""
    reading_since: float = 0.0
    paused: bool = False


def run_indexing(
    db_path: Path,
    name: str,
    embedder: str,
    config: Config,
    *,
    is_busy: Callable[[], bool] = lambda: False,
    cancel: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
    file_time_limit_s: float = FILE_TIME_LIMIT_S,
) -> str:
    """Index collection `name` in a helper process; returns done, cancelled or failed."""
    from .store import DocumentStore

    cancel = cancel or threading.Event()
    for _ in range(MAX_RESTARTS):
        run = _start(db_path, name, embedder, config)
        try:
            ended = _supervise(run, is_busy, cancel, on_tick, file_time_limit_s)
        finally:
            _stop(run)
        if ended[0] == "end":
            return ended[1]
        # The helper was killed for time, or crashed: the file it was reading is at fault.
        with DocumentStore(db_path) as store:
            collection = store.collection(name)
            if not run.reading:
                store.end_job(collection.id, "failed", f"the indexing process stopped: {ended[1]}")
                return "failed"
            record = next((r for r in store.files(collection.id) if r.path == run.reading), None)
            if record is not None:
                store.fail_file(collection.id, record, ended[1])
    raise DocumentsError(f"indexing {name!r} stopped after {MAX_RESTARTS} unreadable files")


def _start(db_path: Path, name: str, embedder: str, config: Config) -> _Run:
    process, conn = start_child("llm.documents.index_helper")
    conn.send({"db": str(db_path), "name": name, "embedder": embedder, "config": config})
    return _Run(process, conn)


def _supervise(
    run: _Run,
    is_busy: Callable[[], bool],
    cancel: threading.Event,
    on_tick: Callable[[], None] | None,
    limit_s: float,
) -> tuple[str, str]:
    """Relay pause/cancel until the helper ends: ("end", state) or ("died", reason)."""
    cancel_sent = False
    while True:
        if cancel.is_set() and not cancel_sent:
            _send(run.conn, {"op": "cancel"})
            cancel_sent = True
        busy = is_busy()
        if busy != run.paused:
            _send(run.conn, {"op": "pause" if busy else "resume"})
            run.paused = busy
        if run.reading and time.monotonic() - run.reading_since > limit_s:
            return ("died", f"reading it took longer than {limit_s:g} s")
        try:
            if run.conn.poll(POLL_S):
                message = run.conn.recv()
                if message["type"] == "file":
                    run.reading, run.reading_since = message["path"], time.monotonic()
                elif message["type"] == "end":
                    return ("end", message["state"])
        except (EOFError, OSError):
            return ("died", _death(run.process))
        if run.process.poll() is not None and not run.conn.poll(0):
            return ("died", _death(run.process))
        if on_tick:
            on_tick()


def _send(conn: Connection, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.send(message)


def _death(process: subprocess.Popen[bytes]) -> str:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    code = process.returncode
    if code is not None and code < 0:
        return f"LocalChat's document reader crashed on it (signal {-code})"
    return f"LocalChat's document reader stopped on it (status {code})"


def _stop(run: _Run) -> None:
    with contextlib.suppress(OSError):
        run.conn.close()
    if run.process.poll() is None:
        run.process.kill()
    run.process.wait()


class IndexingService:
    """Background indexing for the app: one thread per collection being indexed.

    `is_busy` is asked five times a second (pass the engine's `busy`); `resume_interrupted`
    restarts runs that an app restart cut, from where they stopped."""

    def __init__(self, library: Any, *, is_busy: Callable[[], bool] = lambda: False) -> None:
        self.library = library
        self.is_busy = is_busy
        self._lock = threading.Lock()
        self._runs: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._cancelled: set[str] = set()  # by the user (not by `close`)
        self.results: dict[str, str] = {}  # collection -> how its last run here ended

    def start(self, name: str) -> bool:
        """Start indexing `name` in the background; False if it is already running here."""
        with self._lock:
            running = self._runs.get(name)
            if running and running[0].is_alive():
                return False
            cancel = threading.Event()
            self._cancelled.discard(name)
            thread = threading.Thread(
                target=self._run, args=(name, cancel), name=f"index {name}", daemon=True
            )
            self._runs[name] = (thread, cancel)
            thread.start()
            return True

    def _run(self, name: str, cancel: threading.Event) -> None:
        try:
            self.results[name] = self.library.index(name, is_busy=self.is_busy, cancel=cancel)
        except Exception as exc:  # reported through the job's state and here
            self.results[name] = f"failed: {exc}"

    def cancel(self, name: str) -> None:
        """Stop indexing `name` at the next batch (what is stored stays)."""
        with self._lock:
            running = self._runs.get(name)
            self._cancelled.add(name)
        if running:
            running[1].set()

    def running(self) -> list[str]:
        """Collections being indexed by this service now."""
        with self._lock:
            return [name for name, (thread, _) in self._runs.items() if thread.is_alive()]

    def wait(self, name: str, timeout: float | None = None) -> None:
        """Wait for the run of `name` to end (for tests and the command line)."""
        with self._lock:
            running = self._runs.get(name)
        if running:
            running[0].join(timeout)

    def resume_interrupted(self) -> list[str]:
        """Start again every run that was interrupted (the app stopped or crashed mid-way)."""
        names = [p.name for p in self.library.collections() if p.state == "interrupted"]
        for name in names:
            self.start(name)
        return names

    def close(self, timeout: float = 10.0) -> None:
        """Stop every run and wait for them; a run the stop cut (not one the user cancelled)
        is marked interrupted, so `resume_interrupted` carries it on at the next start."""
        with self._lock:
            runs = dict(self._runs)
            cut = {n for n, (t, _) in runs.items() if t.is_alive()} - self._cancelled
        for _, cancel in runs.values():
            cancel.set()
        for thread, _ in runs.values():
            thread.join(timeout)
        for name in sorted(cut):
            if self.results.get(name) == "cancelled":
                with contextlib.suppress(Exception):  # removed meanwhile: nothing to resume
                    store = self.library.store
                    store.end_job(store.collection(name).id, "interrupted")
