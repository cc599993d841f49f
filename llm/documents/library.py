"""`Library`: the documents feature in one object, for the command line, the pages and notebooks.

from llm.documents import Library
library = Library()                       # <data_dir>/documents.db
library.create("notes", ["~/notes"])      # a collection of folders and files
library.index("notes")                    # incremental; in a helper process with limits
for passage in library.search(["notes"], "budget 2024"):
    print(passage.label(), passage.score)
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from .context import RetrievedContext, WholeDocument, build_context, estimate_tokens, whole_document
from .embedders import DEFAULT_EMBEDDER, Embedder, checked_spec, load_embedder
from .errors import DocumentsError, PathRefusedError
from .loaders import MAX_FILE_BYTES, supported
from .search import Passage, Searcher
from .store import DocumentStore, FileRecord, Job

UPLOADS_FOLDER = "document-uploads"  # in the data folder: files added from a page


@dataclass(frozen=True)
class IndexProgress:
    """Where indexing of a collection stands, as a progress bar shows it."""

    state: str  # idle (never indexed), running, done, cancelled, failed, interrupted
    files_done: int = 0
    files_total: int = 0
    chunks_done: int = 0
    seconds_left: float | None = None  # None until a first file gives a rate
    current: str = ""  # the file being read
    error: str = ""

    @property
    def fraction(self) -> float:
        """0.0 to 1.0 (1.0 when there was nothing to do)."""
        return self.files_done / self.files_total if self.files_total else 1.0

    def line(self) -> str:
        """One line for a terminal: '12 of 40 files · 1,234 passages · about 2 min left'."""
        parts = [f"{self.files_done} of {self.files_total} files", f"{self.chunks_done:,} passages"]
        if self.state == "running" and self.seconds_left is not None:
            left = self.seconds_left
            parts.append(
                f"about {left / 60:.0f} min left" if left >= 90 else f"about {left:.0f} s left"
            )
        elif self.state != "running":
            parts.append(self.state)
        return " · ".join(parts)

    @classmethod
    def of(cls, job: Job | None) -> IndexProgress:
        if job is None:
            return cls("idle")
        left = None
        if job.bytes_done and job.seconds > 0:
            left = job.seconds / job.bytes_done * max(0, job.bytes_total - job.bytes_done)
        return cls(
            job.state,
            job.files_done,
            job.files_total,
            job.chunks_done,
            left,
            job.current,
            job.error,
        )


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the collections page and `docs list` show it."""

    name: str
    embedder: str
    paths: tuple[str, ...]
    files_indexed: int
    files_failed: int
    files_pending: int
    chunks: int
    progress: IndexProgress

    @property
    def state(self) -> str:
        return self.progress.state

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "name": self.name,
            "embedder": self.embedder,
            "paths": list(self.paths),
            "files_indexed": self.files_indexed,
            "files_failed": self.files_failed,
            "files_pending": self.files_pending,
            "chunks": self.chunks,
            "state": self.state,
        }


class Library:
    """Collections of documents: create, index, search, and the context for a chat message."""

    def __init__(self, config: Config | None = None, *, store: DocumentStore | None = None) -> None:
        self.config = config or load_config()
        self.store = store or DocumentStore.in_folder(self.config.data_dir)
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.Lock()
        self.searcher = Searcher(self.store, self.embedder)

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and release loaded embedders."""
        for embedder in self._embedders.values():
            embedder.close()
        self._embedders.clear()
        self.store.close()

    def embedder(self, spec: str) -> Embedder:
        """The embedder a spec names, loaded once per library (for queries)."""
        with self._lock:
            if spec not in self._embedders:
                self._embedders[spec] = load_embedder(spec, self.config)
            return self._embedders[spec]

    # -- collections ------------------------------------------------------------------------
    def checked_paths(
        self, paths: Sequence[str | Path], *, roots: Sequence[Path] | None = None
    ) -> list[str]:
        """Absolute paths of existing folders or supported files, refusing LocalChat's own
        data, models and config folders (uploads excepted) and folders holding them; with
        `roots`, only paths under one of them (a path typed in a page: see
        `add_typed_paths`). PathRefusedError says which rule refused a path."""
        own = [self.config.data_dir.resolve(), self.config.models_dir.resolve()]
        if self.config.config_file is not None:
            own.append(self.config.config_file.resolve().parent)
        uploads = self.config.data_dir.resolve() / UPLOADS_FOLDER
        checked = []
        for given in paths:
            path = Path(given).expanduser().resolve()
            if not path.exists():
                raise PathRefusedError(str(given), "missing", "no such file or folder")
            if path.is_file() and not supported(path):
                raise PathRefusedError(
                    str(given),
                    "unsupported",
                    "LocalChat reads PDF, DOCX, Markdown, text and HTML files",
                )
            uploaded = uploads in path.parents
            if not uploaded and any(path == d or d in path.parents for d in own):
                raise PathRefusedError(
                    str(given), "own", "LocalChat's own data, models and settings are not indexed"
                )
            if any(path in d.parents for d in own):
                raise PathRefusedError(
                    str(given), "holds_own", "holds LocalChat's own data, models or settings"
                )
            if (
                roots is not None
                and not uploaded
                and not any(
                    path == r or r in path.parents for r in (Path(r).resolve() for r in roots)
                )
            ):
                raise PathRefusedError(
                    str(given), "outside_roots", "not under a folder allowed for documents"
                )
            checked.append(str(path))
        return checked

    def add_typed_paths(
        self, name: str, paths: Sequence[str], *, reachable_from_others: bool
    ) -> CollectionInfo:
        """Add folders or files typed in a page, whose text comes from whoever holds the page:
        from anywhere (but LocalChat's own folders) when only this machine can reach the app,
        else only under config's `[documents] roots` (none listed: nothing)."""
        roots = self.config.documents_roots if reachable_from_others else None
        return self.add_paths(name, paths, roots=roots)

    def create(
        self,
        name: str,
        paths: Sequence[str | Path] = (),
        *,
        embedder: str = DEFAULT_EMBEDDER,
        roots: Sequence[Path] | None = None,
    ) -> CollectionInfo:
        """A new collection of `paths` (index it with `index`); `roots` as in
        `checked_paths`."""
        spec = checked_spec(embedder, self.config)
        checked = self.checked_paths(paths, roots=roots)
        collection = self.store.create_collection(name, spec)
        self.store.add_paths(collection.id, checked)
        return self.collection(name)

    def add_paths(
        self, name: str, paths: Sequence[str | Path], *, roots: Sequence[Path] | None = None
    ) -> CollectionInfo:
        """Add folders or files to a collection (index it again to read them)."""
        collection = self.store.collection(name)
        self.store.add_paths(collection.id, self.checked_paths(paths, roots=roots))
        return self.collection(name)

    def add_upload(self, name: str, file_name: str, data: bytes) -> Path:
        """Keep an uploaded file in the collection's uploads folder (in the data folder) and
        add that folder to the collection; returns where it was written. The name is reduced
        to its last part; unsupported kinds and files over the size limit are refused."""
        collection = self.store.collection(name)
        base = Path(str(file_name).replace("\\", "/")).name.strip()
        if not base or base.startswith(".") or not supported(Path(base)):
            raise DocumentsError(
                f"{file_name!r}: LocalChat reads PDF, DOCX, Markdown, text and HTML files"
            )
        if len(data) > MAX_FILE_BYTES:
            raise DocumentsError(
                f"{base} is {len(data) / 2**20:,.0f} MB; documents of at most "
                f"{MAX_FILE_BYTES // 2**20} MB are indexed"
            )
        folder = self.config.data_dir / UPLOADS_FOLDER / str(collection.id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / base
        partial = folder / f".{base}.partial"  # hidden: never indexed half-written
        partial.write_bytes(data)
        partial.replace(target)
        self.store.add_paths(collection.id, [str(folder.resolve())])
        return target

    def remove(self, name: str) -> None:
        """Forget a collection and its index; the files themselves are not touched, except
        those uploaded into it (kept in the data folder for it alone), which go too."""
        collection = self.store.collection(name)
        self.store.delete_collection(name)
        uploads = self.config.data_dir / UPLOADS_FOLDER / str(collection.id)
        if uploads.is_dir() and not uploads.is_symlink():
            shutil.rmtree(uploads, ignore_errors=True)

    def collection(self, name: str) -> CollectionInfo:
        """One collection with its counts and indexing progress."""
        collection = self.store.collection(name)
        counts = self.store.counts(collection.id)
        return CollectionInfo(
            collection.name,
            collection.embedder,
            collection.paths,
            counts["indexed"],
            counts["failed"],
            counts["pending"],
            counts["chunks"],
            IndexProgress.of(self.store.job(collection.id)),
        )

    def collections(self) -> list[CollectionInfo]:
        """Every collection, by name."""
        return [self.collection(name) for name in self.store.collection_names()]

    def files(self, name: str) -> list[FileRecord]:
        """A collection's files with their status (failed ones with the reason)."""
        return self.store.files(self.store.collection(name).id)

    def set_embedder(self, name: str, embedder: str) -> None:
        """Use another embedder for a collection: its vectors are made again by the next
        `index` (keyword search keeps working meanwhile)."""
        collection = self.store.collection(name)
        spec = checked_spec(embedder, self.config)
        if spec != collection.embedder:
            self.store.set_embedder(collection.id, spec)

    # -- indexing ---------------------------------------------------------------------------
    def index(
        self,
        name: str,
        *,
        is_busy: Callable[[], bool] = lambda: False,
        cancel: threading.Event | None = None,
        on_progress: Callable[[IndexProgress], None] | None = None,
    ) -> str:
        """Bring a collection's index up to date, in a helper process with limits; blocks
        until done, cancelled or failed (returned). Pauses while `is_busy()`; `on_progress`
        is called about five times a second."""
        from .index_process import run_indexing

        collection = self.store.collection(name)

        def tick() -> None:
            if on_progress:
                on_progress(self.progress(name))

        state = run_indexing(
            self.store.path,
            name,
            collection.embedder,
            self.config,
            is_busy=is_busy,
            cancel=cancel,
            on_tick=tick,
        )
        tick()
        return state

    def progress(self, name: str) -> IndexProgress:
        """Indexing progress of a collection, from the database (survives a page reload)."""
        return IndexProgress.of(self.store.job(self.store.collection(name).id))

    # -- search and chat --------------------------------------------------------------------
    def search(
        self, names: Sequence[str], query: str, *, k: int = 5, mode: str = "hybrid"
    ) -> list[Passage]:
        """The best passages for `query` in the named collections (hybrid, keyword or
        vector), best first; `Passage.relevant` says which pass the relevance threshold."""
        return self.searcher.search(names, query, k=k, mode=mode)

    def retrieve(
        self,
        question: str,
        names: Sequence[str],
        budget_tokens: int,
        *,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> RetrievedContext:
        """The passages to put in the prompt for `question` (see `context.build_context`)."""
        if not names:
            return RetrievedContext("")
        passages = self.search(names, question, k=10)
        return build_context(passages, budget_tokens, count_tokens=count_tokens)

    def whole_document(self, name: str, source: str) -> WholeDocument | None:
        """All the text of one indexed file of a collection (None if it is not indexed)."""
        collection = self.store.collection(name)
        return whole_document(source, self.store.parts(collection.id, source))

    def save_sources(self, message_id: int, context: RetrievedContext) -> None:
        """Store the sources of a reply (by the chat database's message id)."""
        self.store.save_reply_sources(message_id, context.source_rows())

    def sources(self, message_id: int) -> list[dict[str, Any]]:
        """The sources stored with a reply ([] when it used none)."""
        return self.store.reply_sources(message_id)

    def set_chat_collections(self, chat_id: int, names: Sequence[str]) -> None:
        """Remember the collections a chat uses."""
        ids = [self.store.collection(name).id for name in dict.fromkeys(names)]
        self.store.set_chat_collections(chat_id, ids)

    def chat_collections(self, chat_id: int) -> list[str]:
        """The collections a chat uses."""
        return self.store.chat_collections(chat_id)
