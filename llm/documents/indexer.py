"""Indexing a collection: find what changed, read it, split it, embed it, store it.

Incremental: a file whose size and modification time are as stored is not opened; one whose
size or time changed is hashed, and read again only if its content changed; files that are
gone leave the index. Each file is stored in one transaction with all of its passages, and the
job's progress in the same one, so an interrupted run (cancel, crash, kill -9, restart) resumes
with the files not yet stored, never from zero.

`Indexer.run` works in the calling process; the app and the command line run it in a helper
process with limits (`index_process`). Between batches of passages it calls `should_pause`
(wait while it says so: a reply is streaming) and `cancelled` (stop, keeping what is stored).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embedders import BATCH, Embedder
from .errors import DocumentsError, UnreadableFileError
from .loaders import DocumentFileLoader, supported
from .splitting import split_documents
from .store import Collection, DocumentStore, FileRecord, NewPart, process_token

MAX_FILES = 100_000  # per collection: the scan and the search are designed for this
PAUSE_POLL_S = 0.1


@dataclass(frozen=True)
class Found:
    """A file on disk as the scan saw it."""

    path: str
    size: int
    mtime_ns: int


def walk(paths: tuple[str, ...]) -> Iterator[Found]:
    """Supported files under the collection's paths: folders recursively, hidden files and
    folders skipped, symbolic links to folders not followed (no loops)."""
    for root in paths:
        top = Path(root)
        if top.is_file():
            yield from _found(top)
            continue
        for folder, dirs, files in os.walk(top, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield from _found(Path(folder) / name)


def _found(path: Path) -> Iterator[Found]:
    if not supported(path):
        return
    try:
        stat = path.stat()
    except OSError:
        return  # vanished or unreadable between listing and now: as if gone
    yield Found(str(path), stat.st_size, stat.st_mtime_ns)


def file_sha256(path: str) -> str:
    """The content hash that decides whether a touched file changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Indexer:
    """One indexing run of one collection."""

    def __init__(
        self,
        store: DocumentStore,
        name: str,
        embedder: Embedder,
        *,
        should_pause: Callable[[], bool] = lambda: False,
        cancelled: Callable[[], bool] = lambda: False,
        on_file: Callable[[str], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.collection: Collection = store.collection(name)
        self.embedder = embedder
        self.should_pause = should_pause
        self.cancelled = cancelled
        self.on_file = on_file
        self.owner = owner or process_token()

    def run(self) -> str:
        """Index what changed; returns how the run ended: done, cancelled or failed."""
        cid = self.collection.id
        if self.store.claim_job(cid, self.owner) is None:
            raise DocumentsError(
                f"collection {self.collection.name!r} is being indexed by another process"
            )
        try:
            pending = self.scan()
            self.store.start_job(cid, len(pending), sum(r.size for r in pending))
            if self.collection.embedder != self.embedder.spec:
                self.store.set_embedder(cid, self.embedder.spec)
            if not self.reembed():
                return self._end("cancelled")
            for record in pending:
                if not self._wait_while_paused():
                    return self._end("cancelled")
                self.index_file(record)
        except DocumentsError as exc:  # e.g. the remote embedder stopped answering
            return self._end("failed", str(exc))
        return self._end("done")

    def _end(self, state: str, error: str = "") -> str:
        self.store.end_job(self.collection.id, state, error)
        return state

    def scan(self) -> list[FileRecord]:
        """Compare the disk with the index; returns the files to read, in path order."""
        known = {r.path: r for r in self.store.files(self.collection.id)}
        pending: list[tuple[str, int, int]] = []
        unchanged: list[tuple[str, int, int]] = []
        seen: set[str] = set()
        for found in walk(self.collection.paths):
            if found.path in seen:
                continue
            seen.add(found.path)
            if len(seen) > MAX_FILES:
                raise DocumentsError(
                    f"collection {self.collection.name!r} holds more than {MAX_FILES:,} "
                    "documents; split it into smaller collections"
                )
            row = (found.path, found.size, found.mtime_ns)
            record = known.get(found.path)
            if record is None or record.status == "pending":
                pending.append(row)
            elif (record.size, record.mtime_ns) != (found.size, found.mtime_ns):
                same = record.size == found.size and _same_content(found.path, record.sha256)
                (unchanged if same else pending).append(row)
        gone = [path for path in known if path not in seen]
        self.store.plan(self.collection.id, pending, unchanged, gone)
        wanted = {path for path, _, _ in pending}
        return [r for r in self.store.files(self.collection.id) if r.path in wanted]

    def reembed(self) -> bool:
        """Embed stored passages that have no vector (the embedder changed); False if
        cancelled."""
        while True:
            rows = self.store.unembedded_chunks(self.collection.id, BATCH)
            if not rows:
                return True
            if not self._wait_while_paused():
                return False
            vectors = self.embedder.embed([text for _, text in rows])
            ids = [i for i, _ in rows]
            if not self.store.set_vectors(self.collection.id, self.embedder.spec, ids, vectors):
                raise DocumentsError("the collection's embedder changed while indexing")

    def index_file(self, record: FileRecord) -> None:
        """Read, split, embed and store one file (or store why it cannot be read)."""
        started = time.monotonic()
        cid = self.collection.id
        self.store.set_current(cid, record.path)
        if self.on_file:
            self.on_file(record.path)
        try:
            sha = file_sha256(record.path)
            stat = os.stat(record.path)
            record = FileRecord(
                record.id, record.path, stat.st_size, stat.st_mtime_ns, sha, "pending"
            )
            loader = DocumentFileLoader(record.path)
            parts = split_documents(loader.lazy_load())
        except UnreadableFileError as exc:
            self.store.fail_file(cid, record, str(exc), job_seconds=time.monotonic() - started)
            return
        except OSError as exc:
            reason = f"cannot be read: {exc.strerror or exc}"
            self.store.fail_file(cid, record, reason, job_seconds=time.monotonic() - started)
            return
        except MemoryError:
            reason = "needed more memory than a document may use"
            self.store.fail_file(cid, record, reason, job_seconds=time.monotonic() - started)
            return
        if self.on_file:
            self.on_file("")  # read: what follows is LocalChat's own work
        spent = time.monotonic() - started
        dimensions, spent_embedding = self._embed_parts(parts)
        self.store.save_file(
            cid,
            record,
            parts,
            dimensions=dimensions,
            note=loader.note,
            job_seconds=spent + spent_embedding,
        )

    def _embed_parts(self, parts: list[NewPart]) -> tuple[int, float]:
        chunks = [chunk for part in parts for chunk in part.chunks]
        spent, dimensions = 0.0, 0
        for start in range(0, len(chunks), BATCH):
            batch = chunks[start : start + BATCH]
            self._wait_while_paused(finishing=True)
            began = time.monotonic()
            vectors = self.embedder.embed([c.text for c in batch])
            spent += time.monotonic() - began
            for chunk, vector in zip(batch, vectors, strict=True):
                chunk.vector = np.asarray(vector, dtype=np.float32)
            dimensions = int(vectors.shape[1])
        return dimensions, spent

    def _wait_while_paused(self, *, finishing: bool = False) -> bool:
        """Wait while `should_pause`; False when cancelled (a file being finished is
        finished first: its passages are stored whole or not at all)."""
        while True:
            if self.cancelled() and not finishing:
                return False
            if not self.should_pause():
                return True
            time.sleep(PAUSE_POLL_S)


def _same_content(path: str, sha: str) -> bool:
    try:
        return bool(sha) and file_sha256(path) == sha
    except OSError:
        return False
