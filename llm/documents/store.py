"""`DocumentStore`: collections, their files, chunks, vectors and indexing jobs in SQLite.

The file is `<data_dir>/documents.db`, beside the chat database. Every SQL statement of the
documents feature is here. WAL mode, so a page polling progress or a search never waits for
the indexer; each write is one short `BEGIN IMMEDIATE` transaction. A file is written in one
transaction with all of its chunks, so a kill -9 mid-way leaves it as it was before (never
listed as indexed with half its chunks).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import psutil

from .. import migrations as chat_migrations
from ..errors import StorageError
from ..storage import clean_text, now
from . import migrations
from .errors import CollectionNotFoundError, DocumentsError

DB_FILE_NAME = "documents.db"
_NAME = re.compile(r"[\w][\w .\-]{0,63}")
T = TypeVar("T")


def checked_name(name: object) -> str:
    """A collection name: 1 to 64 letters, digits, spaces, '.', '_' or '-'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name != name.strip():
        raise DocumentsError(
            f"collection name {name!r} must be 1 to 64 letters, digits, spaces, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def process_token(pid: int | None = None) -> str:
    """This process, told apart from a later one with the same pid by its start time."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{psutil.Process(pid).create_time():.2f}"


def token_alive(token: str) -> bool:
    """Whether the process named by `process_token` still runs."""
    try:
        pid_text, started = token.split(":")
        process = psutil.Process(int(pid_text))
        alive = process.status() != psutil.STATUS_ZOMBIE
        return alive and abs(process.create_time() - float(started)) < 1.0
    except (ValueError, psutil.NoSuchProcess):
        return False
    except psutil.AccessDenied:
        return True


@dataclass(frozen=True)
class Collection:
    """A named set of folders and files, and what embeds its passages."""

    id: int
    name: str
    created: str
    embedder: str
    dimensions: int
    revision: int
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileRecord:
    """A file of a collection: 'pending' (to index), 'indexed' or 'failed' (with `error`)."""

    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    error: str = ""
    note: str = ""  # e.g. only the first pages were indexed
    chunk_count: int = 0


@dataclass(frozen=True)
class Job:
    """The last indexing run of a collection, as the page shows it (kept across restarts)."""

    state: str  # running, cancelled, done, failed, interrupted (its process died)
    owner: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    chunks_done: int
    seconds: float
    current: str
    error: str
    started: str
    updated: str


@dataclass(frozen=True)
class ChunkRow:
    """A stored passage with where it comes from."""

    id: int
    collection: str
    source: str
    page: int | None
    section: str
    text: str


@dataclass
class NewChunk:
    """A passage about to be stored (vector: unit float32, or None to embed later)."""

    text: str
    vector: np.ndarray | None = None


@dataclass
class NewPart:
    """Text as loaded: a PDF page (page = its number) or a section of a document."""

    text: str
    page: int | None = None
    section: str = ""
    chunks: list[NewChunk] = field(default_factory=list)


class DocumentStore:
    """The documents database. Thread-safe (one connection, locked); safe beside other
    processes (the indexing process writes while the app reads)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the documents database {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a crash of any process loses nothing committed (WAL); a power cut may
            # lose the last files, which the next run indexes again.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._write(self._upgrade)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def in_folder(cls, data_dir: str | Path) -> DocumentStore:
        """The store of a data folder: `<data_dir>/documents.db`."""
        return cls(Path(data_dir) / DB_FILE_NAME)

    def __enter__(self) -> DocumentStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _upgrade(self, db: sqlite3.Connection) -> None:
        version = chat_migrations.schema_version(db)
        if version > migrations.SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer LocalChat (version {version}): it was "
                "left unchanged; update LocalChat"
            )
        chat_migrations.upgrade(db, migrations.MIGRATIONS)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._db)
                    self._db.execute("COMMIT")
                    return result
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"could not save to {self.path}: {exc}") from None

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN")  # one snapshot for the whole read
                try:
                    return work(self._db)
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"could not read {self.path}: {exc}") from None

    def integrity_check(self) -> str:
        """SQLite's own check of the file ("ok" when sound)."""
        return self._read(lambda db: db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- collections ---------------------------------------------------------------------
    def create_collection(self, name: str, embedder: str) -> Collection:
        """A new, empty collection (DocumentsError if the name is taken)."""
        name = checked_name(name)

        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO collections (name, created, embedder) VALUES (?, ?, ?)",
                    (name, now(), embedder),
                )
            except sqlite3.IntegrityError:
                raise DocumentsError(f"a collection named {name!r} already exists") from None

        self._write(work)
        return self.collection(name)

    def collection(self, name: str) -> Collection:
        """A collection by name (CollectionNotFoundError if there is none)."""

        def work(db: sqlite3.Connection) -> Collection:
            row = db.execute(
                "SELECT id, name, created, embedder, dimensions, revision FROM collections "
                "WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                raise CollectionNotFoundError(f"no collection named {name!r}")
            paths = db.execute(
                "SELECT path FROM collection_paths WHERE collection_id = ? ORDER BY path",
                (row[0],),
            ).fetchall()
            return Collection(*row, paths=tuple(p for (p,) in paths))

        return self._read(work)

    def collection_names(self) -> list[str]:
        """Every collection's name, sorted."""
        return self._read(
            lambda db: [n for (n,) in db.execute("SELECT name FROM collections ORDER BY name")]
        )

    def counts(self, collection_id: int) -> dict[str, int]:
        """Files by status, and chunks, of a collection."""

        def work(db: sqlite3.Connection) -> dict[str, int]:
            counts = {"pending": 0, "indexed": 0, "failed": 0}
            counts.update(
                db.execute(
                    "SELECT status, count(*) FROM files WHERE collection_id = ? GROUP BY status",
                    (collection_id,),
                ).fetchall()
            )
            counts["chunks"] = db.execute(
                "SELECT coalesce(sum(chunk_count), 0) FROM files WHERE collection_id = ?",
                (collection_id,),
            ).fetchone()[0]
            return counts

        return self._read(work)

    def delete_collection(self, name: str) -> None:
        """Forget a collection and everything indexed from it (the files stay on disk)."""
        collection = self.collection(name)

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM collections WHERE id = ?", (collection.id,))

        self._write(work)

    def add_paths(self, collection_id: int, paths: Iterable[str]) -> None:
        """Add folders or files to a collection (ones it has are kept once)."""
        rows = [(collection_id, clean_text(p)) for p in paths]
        self._write(
            lambda db: db.executemany(
                "INSERT OR IGNORE INTO collection_paths (collection_id, path) VALUES (?, ?)", rows
            )
        )

    def set_embedder(self, collection_id: int, embedder: str) -> None:
        """Record a new embedder: every vector is dropped, to be made again by the indexer."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE collections SET embedder = ?, dimensions = 0, revision = revision + 1 "
                "WHERE id = ?",
                (embedder, collection_id),
            )
            db.execute(
                "UPDATE chunks SET vector = NULL WHERE file_id IN "
                "(SELECT id FROM files WHERE collection_id = ?)",
                (collection_id,),
            )

        self._write(work)

    # -- files ----------------------------------------------------------------------------
    def files(self, collection_id: int) -> list[FileRecord]:
        """Every file of a collection, by path."""
        return self._read(
            lambda db: [
                FileRecord(*row)
                for row in db.execute(
                    "SELECT id, path, size, mtime_ns, sha256, status, error, note, chunk_count "
                    "FROM files WHERE collection_id = ? ORDER BY path",
                    (collection_id,),
                )
            ]
        )

    def plan(
        self,
        collection_id: int,
        pending: Sequence[tuple[str, int, int]],
        unchanged: Sequence[tuple[str, int, int]],
        gone: Sequence[str],
    ) -> None:
        """After a scan, in one transaction: `pending` (path, size, mtime) files to (re)index,
        `unchanged` ones whose new size/mtime came with the same content, `gone` ones to drop
        with their chunks."""

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO files (collection_id, path, size, mtime_ns, status) "
                "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT (collection_id, path) DO UPDATE "
                "SET status = 'pending', size = excluded.size, mtime_ns = excluded.mtime_ns",
                [(collection_id, path, size, mtime) for path, size, mtime in pending],
            )
            db.executemany(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE collection_id = ? AND path = ?",
                [(size, mtime, collection_id, path) for path, size, mtime in unchanged],
            )
            db.executemany(
                "DELETE FROM files WHERE collection_id = ? AND path = ?",
                [(collection_id, path) for path in gone],
            )
            if gone:
                _bump(db, collection_id)

        self._write(work)

    def save_file(
        self,
        collection_id: int,
        record: FileRecord,
        parts: Sequence[NewPart],
        *,
        dimensions: int,
        note: str = "",
        job_seconds: float = 0.0,
    ) -> int:
        """Replace a file's parts and chunks (with vectors, FTS terms) and mark it indexed, in
        one transaction, counting it done in the collection's job. Returns the chunk count."""
        from ..text_search import indexed_form

        count = sum(len(part.chunks) for part in parts)

        def work(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM parts WHERE file_id = ?", (record.id,))
            db.execute("DELETE FROM chunks WHERE file_id = ?", (record.id,))
            position = 0
            for index, part in enumerate(parts):
                db.execute(
                    "INSERT INTO parts (file_id, position, page, section, text) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (record.id, index, part.page, part.section, part.text),
                )
                for chunk in part.chunks:
                    blob = None if chunk.vector is None else _blob(chunk.vector)
                    chunk_id = db.execute(
                        "INSERT INTO chunks (file_id, position, page, section, text, vector) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (record.id, position, part.page, part.section, chunk.text, blob),
                    ).lastrowid
                    db.execute(
                        "INSERT INTO chunk_terms (rowid, terms) VALUES (?, ?)",
                        (chunk_id, indexed_form(chunk.text)),
                    )
                    position += 1
            db.execute(
                "UPDATE files SET status = 'indexed', size = ?, mtime_ns = ?, sha256 = ?, "
                "error = '', note = ?, chunk_count = ?, indexed = ? WHERE id = ?",
                (record.size, record.mtime_ns, record.sha256, note, count, now(), record.id),
            )
            if dimensions:
                db.execute(
                    "UPDATE collections SET dimensions = ? WHERE id = ?",
                    (dimensions, collection_id),
                )
            _bump(db, collection_id)
            _count_done(db, collection_id, record.size, count, job_seconds)
            return count

        return self._write(work)

    def fail_file(
        self, collection_id: int, record: FileRecord, error: str, *, job_seconds: float = 0.0
    ) -> None:
        """Mark a file unreadable with the reason (its old chunks, if any, leave the index)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM parts WHERE file_id = ?", (record.id,))
            if db.execute("DELETE FROM chunks WHERE file_id = ?", (record.id,)).rowcount:
                _bump(db, collection_id)
            db.execute(
                "UPDATE files SET status = 'failed', size = ?, mtime_ns = ?, sha256 = ?, "
                "error = ?, note = '', chunk_count = 0, indexed = ? WHERE id = ?",
                (record.size, record.mtime_ns, record.sha256, error, now(), record.id),
            )
            _count_done(db, collection_id, record.size, 0, job_seconds)

        self._write(work)

    def mark_unchanged(self, record: FileRecord) -> None:
        """A pending file turned out to have the content already indexed (same hash)."""
        self._write(
            lambda db: db.execute(
                "UPDATE files SET status = 'indexed', size = ?, mtime_ns = ? WHERE id = ?",
                (record.size, record.mtime_ns, record.id),
            )
        )

    def unembedded_chunks(self, collection_id: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (id, text) of chunks without a vector (the embedder changed)."""
        return self._read(
            lambda db: db.execute(
                "SELECT c.id, c.text FROM chunks c JOIN files f ON f.id = c.file_id "
                "WHERE f.collection_id = ? AND c.vector IS NULL ORDER BY c.id LIMIT ?",
                (collection_id, limit),
            ).fetchall()
        )

    def set_vectors(
        self, collection_id: int, embedder: str, ids: Sequence[int], vectors: np.ndarray
    ) -> bool:
        """Store re-made vectors, unless the collection's embedder changed meanwhile."""

        def work(db: sqlite3.Connection) -> bool:
            current = db.execute(
                "SELECT embedder FROM collections WHERE id = ?", (collection_id,)
            ).fetchone()
            if current is None or current[0] != embedder:
                return False
            db.executemany(
                "UPDATE chunks SET vector = ? WHERE id = ?",
                [(_blob(v), i) for i, v in zip(ids, vectors, strict=True)],
            )
            db.execute(
                "UPDATE collections SET dimensions = ? WHERE id = ?",
                (vectors.shape[1], collection_id),
            )
            _bump(db, collection_id)
            return True

        return self._write(work)

    # -- jobs -----------------------------------------------------------------------------
    def job(self, collection_id: int) -> Job | None:
        """The collection's last indexing run; a 'running' one whose process is gone reads
        'interrupted' (it resumes when indexing starts again)."""
        row = self._read(
            lambda db: db.execute(
                "SELECT state, owner, files_total, files_done, bytes_total, bytes_done, "
                "chunks_done, seconds, current, error, started, updated FROM jobs "
                "WHERE collection_id = ?",
                (collection_id,),
            ).fetchone()
        )
        if row is None:
            return None
        job = Job(*row)
        if job.state == "running" and not token_alive(job.owner):
            return Job("interrupted", *row[1:])
        return job

    def claim_job(self, collection_id: int, owner: str) -> Job | None:
        """Make `owner` the one indexing the collection; None when a live process already is.
        A run that was interrupted (its process died) is taken over with its progress; any
        other starts at zero. `start_job` sets the totals after the scan."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT state, owner FROM jobs WHERE collection_id = ?", (collection_id,)
            ).fetchone()
            stamp = now()
            if row and row[0] == "running":
                if row[1] != owner and token_alive(row[1]):
                    return False
                db.execute(
                    "UPDATE jobs SET owner = ?, error = '', updated = ? WHERE collection_id = ?",
                    (owner, stamp, collection_id),
                )
                return True
            db.execute(
                "INSERT OR REPLACE INTO jobs (collection_id, state, owner, started, updated) "
                "VALUES (?, 'running', ?, ?, ?)",
                (collection_id, owner, stamp, stamp),
            )
            return True

        return self.job(collection_id) if self._write(work) else None

    def start_job(self, collection_id: int, files_left: int, bytes_left: int) -> None:
        """The scan's result: what is left to read (added to what this run already did)."""
        self._write(
            lambda db: db.execute(
                "UPDATE jobs SET files_total = files_done + ?, bytes_total = bytes_done + ?, "
                "updated = ? WHERE collection_id = ?",
                (files_left, bytes_left, now(), collection_id),
            )
        )

    def set_current(self, collection_id: int, path: str) -> None:
        """The file being read now (shown with the progress)."""
        self._write(
            lambda db: db.execute(
                "UPDATE jobs SET current = ?, updated = ? WHERE collection_id = ?",
                (path, now(), collection_id),
            )
        )

    def end_job(self, collection_id: int, state: str, error: str = "") -> None:
        """The run ended: done, cancelled or failed."""
        self._write(
            lambda db: db.execute(
                "UPDATE jobs SET state = ?, error = ?, current = '', updated = ? "
                "WHERE collection_id = ?",
                (state, error, now(), collection_id),
            )
        )

    # -- search ---------------------------------------------------------------------------
    def keyword_hits(
        self, collection_ids: Sequence[int], match: str, limit: int
    ) -> list[tuple[int, float]]:
        """(chunk id, bm25) of the best FTS5 matches, best first (bm25: lower is better)."""
        marks = ",".join("?" * len(collection_ids))

        def work(db: sqlite3.Connection) -> list[tuple[int, float]]:
            return db.execute(
                "SELECT t.rowid, bm25(chunk_terms) AS rank FROM chunk_terms t "
                "JOIN chunks c ON c.id = t.rowid JOIN files f ON f.id = c.file_id "
                f"WHERE chunk_terms MATCH ? AND f.collection_id IN ({marks}) "
                "ORDER BY rank LIMIT ?",
                (match, *collection_ids, limit),
            ).fetchall()

        return self._read(work)

    def vectors(self, collection_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, unit vectors as rows) of a collection's embedded chunks."""

        def work(db: sqlite3.Connection) -> list[tuple[int, bytes]]:
            return db.execute(
                "SELECT c.id, c.vector FROM chunks c JOIN files f ON f.id = c.file_id "
                "WHERE f.collection_id = ? AND c.vector IS NOT NULL",
                (collection_id,),
            ).fetchall()

        rows = self._read(work)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, matrix.reshape(len(rows), -1)

    def chunk_rows(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Stored passages by id, with their collection and file."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._read(
            lambda db: db.execute(
                "SELECT c.id, k.name, f.path, c.page, c.section, c.text FROM chunks c "
                "JOIN files f ON f.id = c.file_id JOIN collections k ON k.id = f.collection_id "
                f"WHERE c.id IN ({marks})",
                tuple(ids),
            ).fetchall()
        )
        return {row[0]: ChunkRow(*row) for row in rows}

    def parts(self, collection_id: int, path: str) -> list[tuple[int | None, str, str]]:
        """(page, section, text) of an indexed file, in order ([] if not indexed)."""
        return self._read(
            lambda db: db.execute(
                "SELECT p.page, p.section, p.text FROM parts p JOIN files f ON f.id = p.file_id "
                "WHERE f.collection_id = ? AND f.path = ? AND f.status = 'indexed' "
                "ORDER BY p.position",
                (collection_id, path),
            ).fetchall()
        )

    # -- chats ----------------------------------------------------------------------------
    def save_reply_sources(self, message_id: int, rows: Sequence[dict[str, Any]]) -> None:
        """The sources of a reply (replacing any it had)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM reply_sources WHERE message_id = ?", (message_id,))
            db.executemany(
                "INSERT INTO reply_sources (message_id, position, collection, source, page, "
                "section, text, score) VALUES (:message_id, :position, :collection, :source, "
                ":page, :section, :text, :score)",
                [{**row, "message_id": message_id, "position": i} for i, row in enumerate(rows)],
            )

        self._write(work)

    def reply_sources(self, message_id: int) -> list[dict[str, Any]]:
        """The sources stored with a reply, in the order they were numbered."""
        keys = ("collection", "source", "page", "section", "text", "score")
        rows = self._read(
            lambda db: db.execute(
                f"SELECT {', '.join(keys)} FROM reply_sources WHERE message_id = ? "
                "ORDER BY position",
                (message_id,),
            ).fetchall()
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def set_chat_collections(self, chat_id: int, collection_ids: Sequence[int]) -> None:
        """The collections a chat uses (replacing its previous choice)."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM chat_collections WHERE chat_id = ?", (chat_id,))
            db.executemany(
                "INSERT INTO chat_collections (chat_id, collection_id) VALUES (?, ?)",
                [(chat_id, i) for i in collection_ids],
            )

        self._write(work)

    def chat_collections(self, chat_id: int) -> list[str]:
        """Names of the collections a chat uses."""
        return self._read(
            lambda db: [
                name
                for (name,) in db.execute(
                    "SELECT k.name FROM chat_collections c JOIN collections k "
                    "ON k.id = c.collection_id WHERE c.chat_id = ? ORDER BY k.name",
                    (chat_id,),
                )
            ]
        )


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _bump(db: sqlite3.Connection, collection_id: int) -> None:
    db.execute("UPDATE collections SET revision = revision + 1 WHERE id = ?", (collection_id,))


def _count_done(
    db: sqlite3.Connection, collection_id: int, size: int, chunks: int, seconds: float
) -> None:
    db.execute(
        "UPDATE jobs SET files_done = files_done + 1, bytes_done = bytes_done + ?, "
        "chunks_done = chunks_done + ?, seconds = seconds + ?, updated = ? "
        "WHERE collection_id = ?",
        (size, chunks, seconds, now(), collection_id),
    )
