"""The indexing helper process (`llm.documents.index_helper.main`), started by
`index_process.run_indexing`: indexes one collection at low CPU priority (nice 10) with its
address space capped at `MEMORY_BYTES` plus the embedding model, reading pause, resume and
cancel requests between batches, and telling the parent which file it is reading."""

from __future__ import annotations

import contextlib
import os
from multiprocessing.connection import Connection
from pathlib import Path

from ..child_process import child_connection
from ..config import Config
from .errors import DocumentsError

MEMORY_BYTES = 3 * 1024**3
NICENESS = 10


class _Control:
    """The helper's view of the parent's requests, read between batches."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.paused = False
        self.cancelled = False

    def _read(self) -> None:
        try:
            while self.conn.poll():
                op = self.conn.recv().get("op")
                if op == "pause":
                    self.paused = True
                elif op == "resume":
                    self.paused = False
                elif op == "cancel":
                    self.cancelled = True
        except (EOFError, OSError):
            self.cancelled = True  # the parent is gone: stop at the next safe point

    def should_pause(self) -> bool:
        self._read()
        return self.paused and not self.cancelled

    def is_cancelled(self) -> bool:
        self._read()
        return self.cancelled


def _limit_resources(model_bytes: int) -> None:
    import resource

    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    limit = MEMORY_BYTES + model_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def serve(conn: Connection) -> None:
    """The helper: index one collection as the parent asked, then exit."""
    from .embedders import load_embedder
    from .indexer import Indexer
    from .store import DocumentStore

    request = conn.recv()
    config: Config = request["config"]
    spec = request["embedder"]
    model_bytes = 0
    if spec.startswith("gguf:"):
        with contextlib.suppress(OSError):
            model_bytes = (config.models_dir / spec[5:]).stat().st_size
    _limit_resources(model_bytes)
    control = _Control(conn)
    with DocumentStore(Path(request["db"])) as store:
        try:
            embedder = load_embedder(spec, config)
        except DocumentsError as exc:
            collection = store.collection(request["name"])
            store.claim_job(collection.id, _owner())
            store.end_job(collection.id, "failed", str(exc))
            conn.send({"type": "end", "state": "failed"})
            return
        indexer = Indexer(
            store,
            request["name"],
            embedder,
            should_pause=control.should_pause,
            cancelled=control.is_cancelled,
            on_file=lambda path: conn.send({"type": "file", "path": path}),
        )
        state = indexer.run()
        embedder.close()
    conn.send({"type": "end", "state": state})


def _owner() -> str:
    from .store import process_token

    return process_token()


def main() -> None:
    """The child process's entry point (`child_process.start_child`)."""
    with contextlib.suppress(KeyboardInterrupt, EOFError, BrokenPipeError):
        serve(child_connection())


if __name__ == "__main__":
    main()
