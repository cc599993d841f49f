"""The `Engine`: one worker process holding one loaded model, used from any thread.

Loading and generation happen in a child process (`llm.worker`), so llama.cpp aborting or
crashing on a bad file becomes an `EngineError`, and the worker restarts with the last model
that loaded fine on the next request. One request runs at a time; other callers wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .child_process import start_child
from .config import LOCAL_BACKEND, Config, SamplingParams
from .errors import EngineError, ModelFileError, NoModelError, PromptError
from .fit import check_fits_in_ram
from .gguf_file import ModelFile
from .load_settings import LoadSettings, held_by, settings_for
from .model_files import auto_format, choose_format, read_model_file
from .prompts import ChatFormat, Message

if TYPE_CHECKING:
    from .preferences import Preferences

_SIGNAL_HINTS = {
    signal.SIGABRT: "llama.cpp aborted",
    signal.SIGSEGV: "it crashed",
    signal.SIGKILL: "it was killed, perhaps for lack of memory",
    signal.SIGBUS: "it crashed reading the model file",
}


class RequestQueue:
    """First come, first served access to the worker, with each waiter's place in line."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: list[object] = []  # waiting tickets, oldest first
        self._holder: object | None = None

    def join(self) -> object:
        """Get in line; returns the ticket."""
        ticket = object()
        with self._cond:
            self._line.append(ticket)
        return ticket

    def position(self, ticket: object) -> int:
        """1 = next to run (something is running now), 2 = one more ahead, ..."""
        with self._cond:
            ahead = self._line.index(ticket) if ticket in self._line else 0
            return ahead + (1 if self._holder is not None else 0)

    def take(self, ticket: object, timeout: float) -> bool:
        """Become the holder if it is this ticket's turn, waiting up to `timeout` seconds."""
        with self._cond:

            def my_turn() -> bool:
                return self._holder is None and self._line[0] is ticket

            if self._cond.wait_for(my_turn, timeout=timeout):
                self._line.pop(0)
                self._holder = ticket
                return True
            return False

    def leave(self, ticket: object) -> None:
        """Release the turn, or leave the line without having run."""
        with self._cond:
            if self._holder is ticket:
                self._holder = None
            elif ticket in self._line:
                self._line.remove(ticket)
            self._cond.notify_all()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for a turn (no cancelling) for short requests such as loading."""
        ticket = self.join()
        try:
            while not self.take(ticket, timeout=1.0):
                pass
            yield
        finally:
            self.leave(ticket)

    @property
    def busy(self) -> bool:
        """Whether a request holds the worker now."""
        with self._cond:
            return self._holder is not None

    @property
    def waiting(self) -> int:
        """Requests waiting in line (not counting the running one)."""
        with self._cond:
            return len(self._line)


@dataclass(frozen=True)
class LoadedModel:
    """The model the worker holds: `n_ctx` and `n_threads` as llama.cpp reports them,
    `settings` what it was loaded with (None: not known)."""

    info: ModelFile
    n_ctx: int
    n_threads: int = 0
    settings: LoadSettings | None = None


def _available_plus(freed: int) -> int | None:
    if not freed:
        return None  # check_fits_in_ram reads the machine's available RAM itself
    from .fit import available_ram_bytes

    return available_ram_bytes() + freed


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        sig = signal.Signals(-exitcode)
        hint = _SIGNAL_HINTS.get(sig, "it was stopped")
        return f"{hint} ({sig.name})"
    return f"it exited with status {exitcode}"


class Engine:
    """Owns the inference worker. Thread-safe: requests are served one at a time."""

    backend_name = LOCAL_BACKEND  # where the model runs, as chats record it
    can_continue = True  # a reply is continued from llama.cpp's cache (`open_reply`)
    continue_refusal = ""

    def __init__(
        self,
        *,
        n_ctx: int = 4096,
        n_threads: int = 0,
        n_batch: int = 512,
        prefs: Preferences | None = None,
    ) -> None:
        """`n_ctx` and `n_threads` are the defaults; `prefs` holds what was chosen per model
        (`llm.load_settings.settings_for`)."""
        self.n_ctx_wanted = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.prefs = prefs
        self._queue = RequestQueue()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._worker_model: LoadedModel | None = None  # what the live worker holds
        self.loaded: LoadedModel | None = None  # last model that loaded fine

    @classmethod
    def from_config(cls, config: Config, prefs: Preferences | None = None) -> Engine:
        """An engine with the context and thread settings of `config` as defaults, and those
        chosen per model in `prefs`."""
        return cls(
            n_ctx=config.n_ctx, n_threads=config.n_threads, n_batch=config.n_batch, prefs=prefs
        )

    # worker lifecycle ---------------------------------------------------------------
    def _start_worker(self) -> None:
        self._process, self._conn = start_child("llm.worker")
        self._worker_model = None

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _worker_died(self) -> EngineError:
        process = self._process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        reason = _death_reason(process.returncode if process else None)
        self._process = self._conn = self._worker_model = None
        return EngineError(f"the model process stopped: {reason}")

    def _request(self, message: dict[str, Any]) -> None:
        if not self._alive():
            self._start_worker()
        self._send(message)

    def _send(self, message: dict[str, Any]) -> None:
        if self._conn is None:
            raise EngineError("the model process was closed")
        try:
            self._conn.send(message)
        except OSError:
            raise self._worker_died() from None

    def _receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The worker's next message; None if `timeout` passes first."""
        conn = self._conn
        if conn is None:
            raise EngineError("the model process was closed")
        try:
            if timeout is not None and not conn.poll(timeout):
                return None
            return conn.recv()
        except (EOFError, OSError):
            raise self._worker_died() from None

    def _load_in_worker(self, info: ModelFile, settings: LoadSettings) -> LoadedModel:
        self._request(
            {
                "op": "load",
                "path": info.path,
                "n_ctx": settings.n_ctx,
                "n_threads": settings.n_threads,
                "n_batch": self.n_batch,
                "untrusted_template": auto_format(info).untrusted,
            }
        )
        reply = self._receive()
        assert reply is not None
        if reply["type"] == "error":
            self._worker_model = None
            raise ModelFileError(f"{info.file_name}: {reply['message']}")
        self._worker_model = LoadedModel(info, reply["n_ctx"], reply["n_threads"], settings)
        return self._worker_model

    def _ensure_model(self) -> LoadedModel:
        if self._worker_model is not None and self._alive():
            return self._worker_model
        if self.loaded is None:
            raise NoModelError("no model is loaded")
        # A restarted worker takes the model back as it was loaded (a change waits for a load).
        loaded = self.loaded
        return self._load_in_worker(loaded.info, loaded.settings or self.settings_for(loaded.info))

    # public API ---------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """The loaded model's file name ("" when none is loaded)."""
        return self.loaded.info.file_name if self.loaded else ""

    def chat_format(self, choice: str) -> ChatFormat:
        """The format `choice` ("auto" or a format name) gives the loaded model."""
        return choose_format(choice, self.loaded.info if self.loaded else None)

    def prepare(self) -> None:
        """NoModelError unless a model is loaded (the worker itself starts on demand)."""
        if self.loaded is None:
            raise NoModelError("no model is loaded")

    def settings_for(self, info: ModelFile) -> LoadSettings:
        """The context and threads `info` loads with: the ones chosen for it, else this
        engine's defaults (config.toml's), the context capped by the model's."""
        return settings_for(info, LoadSettings(self.n_ctx_wanted, self.n_threads), self.prefs)

    def context_for(self, info: ModelFile) -> int:
        """The context length this engine would give `info` (`settings_for`)."""
        return self.settings_for(info).n_ctx

    def load(self, path: str | Path, *, ignore_memory_check: bool = False) -> LoadedModel:
        """Load a GGUF file (checked first) with its load settings (`settings_for`); a failure
        keeps the previous model usable. The model loaded now is reused when its settings
        did not change, else loaded again: at its turn in the queue, after any reply.

        Refuses a model that does not fit in available RAM (`llm.fit`: weights, KV cache,
        runtime) unless `ignore_memory_check` (InsufficientMemoryError gives both numbers)."""
        info = read_model_file(path)  # precise errors before llama.cpp sees the file
        settings = self.settings_for(info)
        loaded = self.loaded
        same = loaded is not None and loaded.info == info
        if not ignore_memory_check and not (same and loaded.settings == settings):
            # The worker unloads the model it holds first: the same file's cache comes back.
            freed = held_by(loaded.info, loaded.n_ctx) if same and loaded else 0
            check_fits_in_ram(info, settings.n_ctx, _available_plus(freed))
        with self._queue.turn():
            current = self.loaded
            unchanged = current and current.info == info and current.settings == settings
            if unchanged and self._worker_model:
                return current  # loaded once, reused
            try:
                self.loaded = self._load_in_worker(info, settings)
            except EngineError as exc:
                raise ModelFileError(f"{info.file_name}: {exc}") from None
            return self.loaded

    def tokenize(
        self, messages: list[Message], fmt: ChatFormat, *, open_reply: str = ""
    ) -> list[int]:
        """The token ids the worker would send for `messages` (and a reply to continue, as
        `generate`'s `open_reply`), for inspection and tests."""
        with self._queue.turn():
            self._ensure_model()
            request = {"op": "tokenize", "messages": messages, "format": fmt}
            self._request({**request, "open_reply": open_reply})
            reply = self._receive()
        assert reply is not None
        if reply["type"] == "error":
            raise EngineError(reply["message"])
        return reply["ids"]

    def generate(
        self,
        messages: list[Message],
        fmt: ChatFormat,
        params: SamplingParams,
        *,
        keep_from: int = 0,
        cancel: threading.Event | None = None,
        open_reply: str = "",
    ) -> Iterator[dict[str, Any]]:
        """Stream a reply as events: queued* (position while other requests run), start,
        text*, done. Close the iterator or set `cancel` to stop early (the done event then has
        finish_reason "cancelled"); a request cancelled while queued just leaves the queue.
        `open_reply`: continue this start of the assistant's reply (text events are only what
        follows it); llama.cpp's cache still holds it after the reply it came from, so only
        the tokens after the cached prefix are evaluated."""
        ticket = self._queue.join()
        try:
            position = None
            # The first check does not wait, so a queued caller learns its place at once.
            while not self._queue.take(ticket, timeout=0.1 if position else 0):
                if cancel is not None and cancel.is_set():
                    yield {
                        "type": "done",
                        "finish_reason": "cancelled",
                        "figures": {},
                        "dropped_turns": 0,
                    }
                    return
                if self._queue.position(ticket) != position:
                    position = self._queue.position(ticket)
                    yield {"type": "queued", "position": position}
            yield from self._generate_now(messages, fmt, params, keep_from, cancel, open_reply)
        finally:
            self._queue.leave(ticket)

    def _generate_now(
        self,
        messages: list[Message],
        fmt: ChatFormat,
        params: SamplingParams,
        keep_from: int,
        cancel: threading.Event | None,
        open_reply: str = "",
    ) -> Iterator[dict[str, Any]]:
        self._ensure_model()
        self._request(
            {
                "op": "generate",
                "messages": messages,
                "format": fmt,
                "params": dataclasses.asdict(params),
                "keep_from": keep_from,
                "open_reply": open_reply,
            }
        )
        cancelled = False
        finished = False
        try:
            while True:
                if cancel is not None and cancel.is_set() and not cancelled:
                    self._send({"op": "cancel"})
                    cancelled = True
                event = self._receive(timeout=0.05)
                if event is None:
                    continue
                if event["type"] == "error":
                    finished = True
                    raise (PromptError if event.get("refused") else EngineError)(event["message"])
                if event["type"] == "done":
                    finished = True
                    yield event
                    return
                yield event
        finally:
            if not finished and self._alive():
                self._drain_after_close(cancelled)

    def _drain_after_close(self, cancel_sent: bool) -> None:
        # The caller stopped reading: stop the worker's reply and wait for its end marker.
        try:
            if not cancel_sent:
                self._send({"op": "cancel"})
            for _ in range(100_000):
                event = self._receive(timeout=30)
                if event is None or event["type"] in ("done", "error"):
                    return
        except EngineError:
            pass

    def close(self) -> None:
        """Stop the worker process. Does not wait for a reply in progress: one whose reader
        went away without closing it would otherwise hold the engine forever."""
        process, conn = self._process, self._conn
        self._process = self._conn = self._worker_model = None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            conn.send({"op": "exit"})
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:  # busy generating: the reply is abandoned anyway
            process.kill()
            process.wait()
        conn.close()

    @property
    def busy(self) -> bool:
        """Whether the model is working on a request now (background work such as document
        indexing pauses meanwhile)."""
        return self._queue.busy

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id (None when not running)."""
        return self._process.pid if self._alive() else None
