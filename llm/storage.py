"""The chat history: `ChatStore`, every conversation kept in one SQLite file.

The file is `<data_dir>/localchat.db`. Several processes (the web app, `python -m llm`) and
threads may write at once: WAL mode lets readers run beside a writer, each write is one short
`BEGIN IMMEDIATE` transaction, and a busy database is waited for (busy_timeout, then retries)
instead of surfacing "database is locked". The schema is upgraded at open by `llm.migrations`;
a database written by a newer LocalChat is refused and left untouched.

A reply is stored while it streams: `start_reply` (status "streaming"), `update_reply` with
the partial text, `finish_reply` with how it ended. A reply still "streaming" whose process
has died was cut by a crash: opening the store marks it "interrupted".

Messages form a tree: each has a parent (None for a chat's first message); editing a message
or regenerating a reply adds a sibling, and nothing is overwritten. A chat shows one branch,
from its first message to `current_leaf_id`; `switch_to` shows another (below the chosen
message, the branch last shown there), `delete_branch` removes a message and all below it.
Walk the whole tree with `tree` (parents before children) and each message's `parent_id`.

Chat titles and messages are searchable (`search_chats`): an FTS5 index kept in step by
triggers (llm.migrations), Hangul-aware through `llm.text_search`.

Values are checked by `llm.chat_values`; export and import are `llm.chat_export`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import psutil

from . import migrations
from .chat_values import (
    FIGURE_FIELDS,
    ROLES,
    STATUSES,
    checked_backend,
    checked_format,
    checked_settings,
    checked_title,
    clean_text,
    now,
    settings_from_json,
    title_from_message,
)
from .config import LOCAL_BACKEND, SamplingParams
from .errors import ChatNotFoundError, MessageError, MessageNotFoundError, StorageError
from .figures import Figures
from .text_search import fts_query, snippet_pieces

DB_FILE_NAME = "localchat.db"
REPLY_END_STATUSES = ("complete", "stopped", "failed")
FINISH_REASONS = ("stop", "length", "cancelled", "")
LEAF: Literal["leaf"] = "leaf"  # as a parent: the chat's current leaf
T = TypeVar("T")
ParentChoice = int | None | Literal["leaf"]


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMessage:
    """One message of a stored chat. Figures are None when unknown (user messages, failures)."""

    id: int
    chat_id: int
    position: int
    role: str
    content: str
    created: str
    model: str = ""
    format: str = ""
    status: str = "complete"
    error: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_to_first_token_s: float | None = None
    tokens_per_second: float | None = None
    parent_id: int | None = None  # None: the chat's first message (or a sibling of it)
    finish_reason: str = ""  # "stop", "length" (the token limit), "cancelled"; "" unknown
    # Every message with the same parent, this one included, oldest first (filled for the
    # messages of `StoredChat.messages` and of `ChatStore.tree`).
    sibling_ids: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the web pages."""
        return dataclasses.asdict(self)

    @property
    def can_continue(self) -> bool:
        """Whether generation can pick up where this reply ended: stopped by the user, or
        complete but cut at the token limit."""
        return self.role == "assistant" and (
            self.status == "stopped"
            or (self.status == "complete" and self.finish_reason == "length")
        )

    @property
    def figures(self) -> Figures | None:
        """The reply's figures, None when none were recorded (user messages, failures)."""
        if self.completion_tokens is None:
            return None
        return Figures(
            prompt_tokens=self.prompt_tokens or 0,
            cached_tokens=None,
            completion_tokens=self.completion_tokens,
            time_to_first_token_s=self.time_to_first_token_s or 0.0,
            tokens_per_second=self.tokens_per_second or 0.0,
        )


@dataclass(frozen=True)
class ChatSummary:
    """A row of the chat list. `title` is "" until the first message names the chat."""

    id: int
    title: str
    created: str
    updated: str
    model: str
    message_count: int
    backend: str = LOCAL_BACKEND
    pinned: bool = False


@dataclass(frozen=True)
class ChatHit:
    """A chat found by `ChatStore.search_chats`. `message_id` is the message that matched
    (None when only the title did): `switch_to(chat_id, message_id)` opens its branch.
    `snippet` is plain text in pieces, True for the words that matched (never HTML)."""

    chat_id: int
    title: str
    message_id: int | None
    snippet: tuple[tuple[str, bool], ...]
    updated: str


@dataclass(frozen=True)
class StoredChat:
    """A chat with its settings and its visible branch: `messages`, from the first message to
    `current_leaf_id` (other branches: `ChatStore.tree`)."""

    id: int
    title: str
    created: str
    updated: str
    system_prompt: str
    settings: dict[str, Any]  # SamplingParams fields; missing ones take the config's values
    model: str  # file name of the model that wrote it last ("" if none yet)
    chat_format: str  # "auto" or a format name
    backend: str = LOCAL_BACKEND  # where `model` runs: "local" or a [[backends]] name
    messages: tuple[StoredMessage, ...] = field(default=())
    current_leaf_id: int | None = None  # the last message of the visible branch
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the web pages."""
        return dataclasses.asdict(self)


# -- reading ---------------------------------------------------------------------------------


def _decode_text(raw: bytes) -> str:
    # A file edited by another tool may hold invalid UTF-8: show U+FFFD rather than fail.
    return raw.decode("utf-8", "replace")


# -- processes that stream replies -----------------------------------------------------------


def _process_token(pid: int) -> str:
    # pid alone is not enough: pids are reused; the start time tells processes apart.
    return f"{pid}:{psutil.Process(pid).create_time():.2f}"


def _writer_alive(token: str) -> bool:
    try:
        pid_text, started_text = token.split(":")
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started) < 1.0
    except psutil.NoSuchProcess:  # also ZombieProcess
        return False
    except psutil.AccessDenied:  # it exists, run by someone else
        return True


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


def _storage_error(path: Path, exc: sqlite3.Error, doing: str) -> StorageError:
    """One sentence for a database operation that failed (busy ones are retried first)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    full = code & 0xFF == sqlite3.SQLITE_FULL if code is not None else "is full" in str(exc)
    if full:  # ENOSPC on the file, or SQLite's own size limit
        return StorageError(
            f"the disk holding the chat database {path} is full: this change was not saved; "
            "free some space and try again"
        )
    return StorageError(f"could not {doing} the chat database {path}: {exc}")


# -- the store ---------------------------------------------------------------------------


class ChatStore:
    """Every conversation, in one SQLite file. Thread-safe; safe beside other processes.

    Methods raise ChatNotFoundError for an unknown chat id and StorageError when the file
    cannot be used. Opening marks replies cut by a crash as "interrupted".
    """

    def __init__(
        self, path: str | Path, *, busy_timeout_s: float = 5.0, give_up_after_s: float = 30.0
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.give_up_after_s = give_up_after_s
        self._lock = threading.RLock()  # one connection, shared by the process's threads
        self._writer = _process_token(os.getpid())
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the data folder {self.path.parent}: {exc.strerror}"
            ) from None
        self._db = self._open()
        self.mark_interrupted_replies()

    @classmethod
    def in_folder(cls, data_dir: str | Path, **options: float) -> ChatStore:
        """The store of a data folder: `<data_dir>/localchat.db`."""
        return cls(Path(data_dir) / DB_FILE_NAME, **options)

    def __enter__(self) -> ChatStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    # -- opening and transactions -------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the chat database {self.path}: {exc}") from None
        db.text_factory = _decode_text
        migrations.register_functions(db)  # the search index's triggers call them
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            db.execute("PRAGMA foreign_keys = ON")
            # Read the version before anything writes: a newer file must stay byte-identical.
            found = self._retry(lambda: self._check_version(db))
            # WAL: readers (other tabs, the command line) never wait for a writer.
            self._retry(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone())
            # Commits are rare (per message, every 2 s while streaming): full fsync is cheap
            # and a power cut then loses nothing that was committed.
            db.execute("PRAGMA synchronous = FULL")
            if found < migrations.SCHEMA_VERSION:
                self._retry(lambda: self._in_transaction(db, self._upgrade))
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StorageError(f"cannot use the chat database {self.path}: {exc}") from None
        except BaseException:
            db.close()
            raise
        return db

    def _check_version(self, db: sqlite3.Connection) -> int:
        version = migrations.schema_version(db)
        if version > migrations.SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer LocalChat (database version {version}; "
                f"this one knows up to {migrations.SCHEMA_VERSION}): it was left unchanged; "
                "update LocalChat or choose another data folder"
            )
        if version == 0:
            tables = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            if tables:
                raise StorageError(
                    f"{self.path} holds another program's tables, not LocalChat's: it was left "
                    "unchanged; choose another data folder"
                )
        return version

    def _upgrade(self, db: sqlite3.Connection) -> None:
        self._check_version(db)  # again, inside the write lock: another process may have won
        migrations.upgrade(db)

    @staticmethod
    def _in_transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later needs
        # it fails with SQLITE_BUSY at once in WAL mode, without waiting.
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _retry(self, attempt: Callable[[], T]) -> T:
        # busy_timeout already waits inside SQLite; this covers the cases it does not
        # (and a busy_timeout of 0), with a bounded overall wait.
        deadline = time.monotonic() + self.give_up_after_s
        delay = 0.005
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"the chat database {self.path} stayed locked by another program for "
                        f"{self.give_up_after_s:.0f} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return self._retry(lambda: self._in_transaction(self._db, work))
            except sqlite3.Error as exc:  # rolled back: nothing of this write was kept
                raise _storage_error(self.path, exc, "save to") from None

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            # One read transaction: a chat and its messages come from the same snapshot.
            self._db.execute("BEGIN")
            try:
                return work(self._db)
            finally:
                if self._db.in_transaction:
                    self._db.execute("COMMIT")

        with self._lock:
            try:
                return self._retry(attempt)
            except sqlite3.Error as exc:
                raise _storage_error(self.path, exc, "read") from None

    @property
    def schema_version(self) -> int:
        """The database's schema version (migrations applied)."""
        return self._read(migrations.schema_version)

    # -- chats ---------------------------------------------------------------------------
    def create_chat(
        self,
        *,
        title: str = "",
        system_prompt: str = "",
        settings: SamplingParams | Mapping[str, Any] | None = None,
        model: str = "",
        chat_format: str = "auto",
        backend: str = LOCAL_BACKEND,
        created: str = "",
        messages: Sequence[Mapping[str, Any]] = (),
        current_leaf: int | None = None,
        pinned: bool = False,
    ) -> int:
        """A new chat; returns its id. An empty title is set from the first user message.

        With `messages` (each: role, content, and optionally created, model, format, status,
        finish_reason, error, figures and `parent`: the index in `messages` of its parent,
        an earlier one, or None for a first message; without `parent`, the message before it)
        and `created`, a whole chat is stored at once, all or nothing: an import
        (`llm.chat_export.import_chat`). `current_leaf` is the index of the message that ends
        the visible branch (default: the last one)."""
        row = {
            "title": checked_title(title) if title.strip() else "",
            "system_prompt": clean_text(system_prompt),
            "settings_json": json.dumps(checked_settings(settings)),
            "model": clean_text(model),
            "chat_format": checked_format(chat_format),
            "backend": checked_backend(backend),
            "pinned": int(bool(pinned)),
        }
        rows = []
        for index, m in enumerate(messages):
            parent = m["parent"] if "parent" in m else (index - 1 if index else None)
            if parent is not None and not (
                isinstance(parent, int) and not isinstance(parent, bool) and 0 <= parent < index
            ):
                raise StorageError(f"message {index}: its parent must be an earlier message")
            values = _message_values(
                m["role"],
                m["content"],
                m.get("model", ""),
                m.get("format", ""),
                m.get("status", "complete"),
                m.get("error", ""),
                m,
            )
            values["finish_reason"] = _checked_finish(m.get("finish_reason", ""))
            rows.append((parent, {**values, "created": m.get("created") or now()}))
        if current_leaf is not None and not 0 <= current_leaf < len(rows):
            raise StorageError("the current leaf must be one of the chat's messages")

        def work(db: sqlite3.Connection) -> int:
            stamp = now()
            cursor = db.execute(
                "INSERT INTO chats (title, created, updated, system_prompt, settings_json, "
                "model, chat_format, backend, pinned) VALUES (:title, :created, :updated, "
                ":system_prompt, :settings_json, :model, :chat_format, :backend, :pinned)",
                {**row, "created": created or stamp, "updated": stamp},
            )
            chat_id = int(cursor.lastrowid)
            ids: list[int] = []
            for parent, values in rows:
                ids.append(
                    _insert_message(db, chat_id, values, None if parent is None else ids[parent])
                )
            if ids:
                leaf = ids[-1 if current_leaf is None else current_leaf]
                _show_branch(db, chat_id, leaf)
            return chat_id

        return self._write(work)

    def list_chats(self, limit: int | None = None) -> list[ChatSummary]:
        """Chats: pinned ones first, then the most recently active first. `message_count`
        counts every message of every branch."""

        def work(db: sqlite3.Connection) -> list[ChatSummary]:
            rows = db.execute(
                "SELECT c.id, c.title, c.created, c.updated, c.model, "
                "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id), c.backend, "
                "c.pinned != 0 FROM chats c "
                "ORDER BY c.pinned != 0 DESC, c.updated DESC, c.id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
            return [ChatSummary(*row[:7], pinned=bool(row[7])) for row in rows]

        return self._read(work)

    def get_chat(self, chat_id: int) -> StoredChat:
        """A chat with its visible branch (`messages`)."""
        return self._read(lambda db: _read_chat(db, chat_id))

    def tree(self, chat_id: int) -> list[StoredMessage]:
        """Every message of a chat, on every branch, parents before children (in the order
        they were written); walk it with `parent_id`."""

        def work(db: sqlite3.Connection) -> list[StoredMessage]:
            _require_chat(db, chat_id)
            return _Tree.read(db, chat_id).messages()

        return self._read(work)

    def switch_to(self, chat_id: int, message_id: int) -> StoredChat:
        """Show the branch through `message_id`: above it, the path from the chat's first
        message; below it, the branch last shown there (else the newest reply at each step).
        Stored: the chat reopens on this branch. MessageNotFoundError if the message is not
        one of this chat's."""

        def work(db: sqlite3.Connection) -> StoredChat:
            tree = _Tree.read(db, chat_id)
            tree.require(message_id)
            _show_branch(db, chat_id, tree.leaf_below(message_id), tree)
            return _read_chat(db, chat_id)

        return self._write(work)

    def delete_branch(self, chat_id: int, message_id: int) -> StoredChat:
        """Delete a message and every message below it. When the visible branch went with
        it, a remaining sibling's branch is shown (the one before it, else after it), else
        the branch ends at its parent. MessageNotFoundError if it is not this chat's."""

        def work(db: sqlite3.Connection) -> StoredChat:
            tree = _Tree.read(db, chat_id)
            tree.require(message_id)
            doomed = tree.subtree(message_id)[::-1]  # children before their parents
            leaf = _current_leaf(db, chat_id, tree)
            parent = tree.parent[message_id]
            # parent_id references are checked at the end of each statement: a batch never
            # deletes a message whose children are left for a later one.
            for start in range(0, len(doomed), 500):
                batch = doomed[start : start + 500]
                db.execute(
                    f"DELETE FROM messages WHERE id IN ({','.join('?' * len(batch))})", batch
                )
            db.execute("UPDATE chats SET updated = ? WHERE id = ?", (now(), chat_id))
            if leaf is not None and leaf not in doomed:
                return _read_chat(db, chat_id)
            siblings = tree.children.get(parent, [])
            at = siblings.index(message_id)
            rest = siblings[:at][-1:] + siblings[at + 1 : at + 2]
            tree = _Tree.read(db, chat_id)
            if rest:
                _show_branch(db, chat_id, tree.leaf_below(rest[0]), tree)
            elif parent is not None:
                _show_branch(db, chat_id, parent, tree)
            else:
                db.execute("UPDATE chats SET current_leaf_id = NULL WHERE id = ?", (chat_id,))
            return _read_chat(db, chat_id)

        return self._write(work)

    def set_pinned(self, chat_id: int, pinned: bool) -> None:
        """Pin a chat to the top of the list (or unpin it)."""
        self._write(
            lambda db: _require(
                db.execute(
                    "UPDATE chats SET pinned = ? WHERE id = ?", (int(bool(pinned)), chat_id)
                ),
                chat_id,
            )
        )

    def search_chats(self, words: str, *, limit: int = 20) -> list[ChatHit]:
        """Chats whose title or messages hold `words` (any branch), best first: chats holding
        all the words, else any of them; titles that match before messages. Each hit names its
        best matching message and a snippet around the match. Whatever is typed is taken as
        words (FTS5 syntax characters are not operators); at most SEARCH_MAX_CHARS characters
        and SEARCH_MAX_TERMS words are used."""
        words = clean_text(words[:SEARCH_MAX_CHARS])
        limit = max(1, min(int(limit), 100))
        queries = [fts_query(words, match="all", max_terms=SEARCH_MAX_TERMS)]
        queries.append(fts_query(words, match="any", max_terms=SEARCH_MAX_TERMS))

        def work(db: sqlite3.Connection) -> list[ChatHit]:
            for query in dict.fromkeys(q for q in queries if q):
                hits = _search(db, query, words, limit)
                if hits:
                    return hits
            return []

        return self._read(work)

    def rename_chat(self, chat_id: int, title: str) -> None:
        """Give a chat a new title (one line, 1 to 200 characters)."""
        title = checked_title(title)
        self._write(
            lambda db: _require(
                db.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id)), chat_id
            )
        )

    def update_chat(
        self,
        chat_id: int,
        *,
        system_prompt: str | None = None,
        settings: SamplingParams | Mapping[str, Any] | None = None,
        model: str | None = None,
        chat_format: str | None = None,
        backend: str | None = None,
    ) -> None:
        """Change a chat's system prompt, generation settings, model, format or backend
        (None: keep)."""
        changes: dict[str, Any] = {}
        if system_prompt is not None:
            changes["system_prompt"] = clean_text(system_prompt)
        if settings is not None:
            changes["settings_json"] = json.dumps(checked_settings(settings))
        if model is not None:
            changes["model"] = clean_text(model)
        if chat_format is not None:
            changes["chat_format"] = checked_format(chat_format)
        if backend is not None:
            changes["backend"] = checked_backend(backend)
        if not changes:
            self.get_chat(chat_id)  # still refuse an unknown id
            return
        assignments = ", ".join(f"{column} = :{column}" for column in changes)
        sql = f"UPDATE chats SET {assignments} WHERE id = :chat_id"
        self._write(lambda db: _require(db.execute(sql, {**changes, "chat_id": chat_id}), chat_id))

    def delete_chat(self, chat_id: int) -> None:
        """Delete a chat and its messages."""
        self._write(
            lambda db: _require(db.execute("DELETE FROM chats WHERE id = ?", (chat_id,)), chat_id)
        )

    # -- messages ------------------------------------------------------------------------
    def add_message(
        self,
        chat_id: int,
        role: str,
        content: str,
        *,
        model: str = "",
        format: str = "",
        status: str = "complete",
        error: str = "",
        figures: Mapping[str, Any] | None = None,
        parent_id: ParentChoice = LEAF,
    ) -> int:
        """Add a finished message to a chat (committed on return); returns its id. It goes
        below `parent_id` (default: the end of the visible branch; None: a new first message)
        and becomes the end of the visible branch.

        The chat's first user message gives it its title if it has none.
        """
        values = _message_values(role, content, model, format, status, error, figures)
        return self._write(lambda db: _insert_message(db, chat_id, values, parent_id))

    def start_reply(
        self,
        chat_id: int,
        *,
        model: str = "",
        format: str = "",
        backend: str = LOCAL_BACKEND,
        parent_id: ParentChoice = LEAF,
    ) -> int:
        """Add an empty assistant message with status "streaming" below `parent_id` (default:
        the end of the visible branch; a regenerated reply goes below the same question as
        the reply it replaces); returns its id.

        `model` (on `backend`) also becomes the chat's model: the one it continues with when
        it is reopened.
        """
        values = {"model": clean_text(model), "format": clean_text(format)}
        backend = checked_backend(backend)
        return self._write(lambda db: self._insert_reply(db, chat_id, values, backend, parent_id))

    def begin_exchange(
        self,
        chat_id: int,
        text: str,
        *,
        model: str = "",
        format: str = "",
        backend: str = LOCAL_BACKEND,
        parent_id: ParentChoice = LEAF,
    ) -> tuple[int, int]:
        """Add a user message below `parent_id` (default: the end of the visible branch; an
        edited question goes below the same message as the one it replaces) and the start of
        its reply in one transaction, before generation starts; returns (user message id,
        reply id). Giving the parent explicitly keeps each tab's exchanges on its own branch
        when two tabs write to one chat."""
        user = {"role": "user", "content": clean_text(text), "model": "", "format": ""}
        reply = {"model": clean_text(model), "format": clean_text(format)}
        backend = checked_backend(backend)

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            user_id = _insert_message(db, chat_id, user, parent_id)
            return user_id, self._insert_reply(db, chat_id, reply, backend, user_id)

        return self._write(work)

    def _insert_reply(
        self,
        db: sqlite3.Connection,
        chat_id: int,
        values: dict[str, Any],
        backend: str,
        parent_id: ParentChoice,
    ) -> int:
        values = {**values, "role": "assistant", "content": "", "status": "streaming"}
        values["writer"] = self._writer
        message_id = _insert_message(db, chat_id, values, parent_id)
        if values["model"]:
            db.execute(
                "UPDATE chats SET model = ?, backend = ? WHERE id = ?",
                (values["model"], backend, chat_id),
            )
        return message_id

    def forget_exchange(self, user_message_id: int | None, reply_id: int) -> bool:
        """Remove a question and its reply, which never started (the model refused the
        question): as if it had never been sent; the visible branch ends where it was before.
        With `user_message_id` None only the reply goes (a refused regeneration). A chat left
        empty that the question had named is deleted too; returns whether it was."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT m.chat_id, m.parent_id, c.title FROM messages m JOIN chats c "
                "ON c.id = m.chat_id WHERE m.id = ?",
                (reply_id if user_message_id is None else user_message_id,),
            ).fetchone()
            if row is None:  # the chat was deleted meanwhile
                return False
            chat_id, parent_id, title = row
            if user_message_id is not None:
                question = db.execute(
                    "SELECT content FROM messages WHERE id = ? AND role = 'user'",
                    (user_message_id,),
                ).fetchone()
                if question is None:
                    return False
            gone = [reply_id] if user_message_id is None else [reply_id, user_message_id]
            for message_id in gone:  # the reply first: it refers to the question
                db.execute(
                    "DELETE FROM messages WHERE chat_id = ? AND id = ?", (chat_id, message_id)
                )
            left = db.execute("SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,))
            if left.fetchone()[0]:
                if parent_id is not None:
                    _show_branch(db, chat_id, _Tree.read(db, chat_id).leaf_below(parent_id))
                return False
            if user_message_id is None or title != title_from_message(question[0]):
                db.execute("UPDATE chats SET current_leaf_id = NULL WHERE id = ?", (chat_id,))
                return False
            db.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
            return True

        return self._write(work)

    def update_reply(self, message_id: int, text: str) -> bool:
        """Save the partial text of a streaming reply. False if it is no longer streaming
        (finished, or its chat was deleted meanwhile)."""
        text = clean_text(text)
        cursor = self._write(
            lambda db: db.execute(
                "UPDATE messages SET content = ? WHERE id = ? AND status = 'streaming'",
                (text, message_id),
            )
        )
        return cursor.rowcount == 1

    def resume_reply(self, message_id: int) -> StoredMessage:
        """Mark a reply that can be continued (`StoredMessage.can_continue`) as "streaming"
        again, written by this process; returns it as it was. MessageError if it cannot be
        continued (it ended, or is being written)."""

        def work(db: sqlite3.Connection) -> StoredMessage:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None or isinstance(message_id, bool):
                raise MessageNotFoundError(f"no message with id {message_id}")
            message = StoredMessage(*row)
            if not message.can_continue:
                raise MessageError(
                    "only a reply that was stopped or cut at the token limit can be continued"
                )
            db.execute(
                "UPDATE messages SET status = 'streaming', writer = ?, finish_reason = '' "
                "WHERE id = ?",
                (self._writer, message_id),
            )
            return message

        return self._write(work)

    def finish_reply(
        self,
        message_id: int,
        *,
        status: str,
        text: str,
        figures: Mapping[str, Any] | None = None,
        format: str | None = None,
        error: str = "",
        finish_reason: str = "",
    ) -> bool:
        """Record how a reply ended: status "complete", "stopped" (by the user) or "failed"
        (with `error`), its final text and figures, and why generation ended ("stop",
        "length": cut at the token limit, "cancelled"; "" unknown). False if the message no
        longer exists."""
        if status not in REPLY_END_STATUSES:
            raise StorageError(f"status {status!r} must be one of {', '.join(REPLY_END_STATUSES)}")
        values = {
            "status": status,
            "content": clean_text(text),
            "error": clean_text(error),
            "id": message_id,
            "stamp": now(),
            "finish_reason": _checked_finish(finish_reason),
            **_checked_figures(figures),
        }
        set_format = ", format = :format" if format else ""
        if format:
            values["format"] = clean_text(format)

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE messages SET status = :status, content = :content, error = :error, "
                "writer = '', finish_reason = :finish_reason, prompt_tokens = :prompt_tokens, "
                "completion_tokens = :completion_tokens, "
                "time_to_first_token_s = :time_to_first_token_s, "
                f"tokens_per_second = :tokens_per_second{set_format} "
                "WHERE id = :id AND role = 'assistant'",
                values,
            )
            db.execute(
                "UPDATE chats SET updated = :stamp "
                "WHERE id = (SELECT chat_id FROM messages WHERE id = :id)",
                values,
            )
            return cursor.rowcount == 1

        return self._write(work)

    def mark_interrupted_replies(self) -> int:
        """Mark replies left "streaming" by a process that no longer runs as "interrupted";
        returns how many. Replies other live processes are writing are left alone."""

        streaming = self._read(
            lambda db: db.execute(
                "SELECT id, writer FROM messages WHERE status = 'streaming'"
            ).fetchall()
        )
        dead = [(message_id,) for message_id, writer in streaming if not _writer_alive(writer)]
        if not dead:
            return 0  # the usual case: no write lock taken
        return self._write(
            lambda db: sum(
                db.execute(
                    "UPDATE messages SET status = 'interrupted', writer = '' "
                    "WHERE id = ? AND status = 'streaming'",
                    row,
                ).rowcount
                for row in dead
            )
        )


_MESSAGE_COLUMNS = (
    "id, chat_id, position, role, content, created, model, format, status, error, "
    "prompt_tokens, completion_tokens, time_to_first_token_s, tokens_per_second, parent_id, "
    "finish_reason"
)
SEARCH_MAX_CHARS = 200  # of a search: longer text is cut
SEARCH_MAX_TERMS = 8  # words of a search: more are left out
_SNIPPET_CHARS = 160


def _require(cursor: sqlite3.Cursor, chat_id: int) -> None:
    if cursor.rowcount == 0:
        raise ChatNotFoundError(f"no chat with id {chat_id}")


def _require_chat(db: sqlite3.Connection, chat_id: int) -> tuple[Any, ...]:
    row = db.execute(
        "SELECT id, title, created, updated, system_prompt, settings_json, model, "
        "chat_format, backend, current_leaf_id, pinned FROM chats WHERE id = ?",
        (chat_id,),
    ).fetchone()
    if row is None:
        raise ChatNotFoundError(f"no chat with id {chat_id}")
    return row


class _Tree:
    """A chat's messages as a tree, read in one query (ids, parents, remembered children)."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = {row[0]: row for row in rows}  # id -> message columns + last_child_id
        self.parent: dict[int, int | None] = {}
        self.children: dict[int | None, list[int]] = {}
        for row in rows:  # by position: parents come first, children oldest first
            parent = row[14] if row[14] in self.rows else None
            self.parent[row[0]] = parent
            self.children.setdefault(parent, []).append(row[0])

    @classmethod
    def read(cls, db: sqlite3.Connection, chat_id: int) -> _Tree:
        _require_chat(db, chat_id)
        rows = db.execute(
            f"SELECT {_MESSAGE_COLUMNS}, last_child_id FROM messages WHERE chat_id = ? "
            "ORDER BY position",
            (chat_id,),
        ).fetchall()
        return cls(rows)

    def require(self, message_id: int) -> None:
        # bool is an int to Python (True == 1): an id from a page must be a real int.
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise MessageNotFoundError(f"message id {message_id!r} must be a whole number")
        if message_id not in self.rows:
            raise MessageNotFoundError(f"no message with id {message_id} in this chat")

    def message(self, message_id: int) -> StoredMessage:
        row = self.rows[message_id]
        siblings = tuple(self.children.get(self.parent[message_id], ()))
        return StoredMessage(*row[:16], sibling_ids=siblings)

    def messages(self) -> list[StoredMessage]:
        return [self.message(message_id) for message_id in self.rows]

    def path(self, leaf: int) -> list[int]:
        """The ids from the first message down to `leaf`."""
        path = [leaf]
        while (parent := self.parent[path[-1]]) is not None and len(path) <= len(self.rows):
            path.append(parent)
        return path[::-1]

    def leaf_below(self, message_id: int) -> int:
        """The end of the branch last shown below `message_id` (else the newest children)."""
        seen = {message_id}
        while children := self.children.get(message_id):
            remembered = self.rows[message_id][16]
            message_id = remembered if remembered in children else children[-1]
            if message_id in seen:  # a cycle (a file edited by hand): stop
                break
            seen.add(message_id)
        return message_id

    def subtree(self, message_id: int) -> list[int]:
        """`message_id` and every message below it."""
        found, todo = [], [message_id]
        while todo:
            current = todo.pop()
            found.append(current)
            todo += self.children.get(current, [])
        return found


def _current_leaf(db: sqlite3.Connection, chat_id: int, tree: _Tree) -> int | None:
    """The end of the visible branch: the stored leaf, or (stale or unset) the branch last
    shown from the first message."""
    leaf = db.execute("SELECT current_leaf_id FROM chats WHERE id = ?", (chat_id,)).fetchone()[0]
    if leaf in tree.rows:
        return leaf
    roots = tree.children.get(None)
    return tree.leaf_below(roots[-1]) if roots else None


def _show_branch(
    db: sqlite3.Connection, chat_id: int, leaf: int, tree: _Tree | None = None
) -> None:
    """Make the branch ending at `leaf` the visible one, remembered at every fork above it."""
    tree = tree or _Tree.read(db, chat_id)
    path = tree.path(leaf)
    db.executemany(
        "UPDATE messages SET last_child_id = ? WHERE id = ? AND last_child_id IS NOT ?",
        [(child, parent, child) for parent, child in itertools.pairwise(path)],
    )
    db.execute("UPDATE chats SET current_leaf_id = ? WHERE id = ?", (leaf, chat_id))


def _read_chat(db: sqlite3.Connection, chat_id: int) -> StoredChat:
    row = _require_chat(db, chat_id)
    tree = _Tree.read(db, chat_id)
    leaf = _current_leaf(db, chat_id, tree)
    path = tree.path(leaf) if leaf is not None else []
    return StoredChat(
        id=row[0],
        title=row[1],
        created=row[2],
        updated=row[3],
        system_prompt=row[4],
        settings=settings_from_json(row[5]),
        model=row[6],
        chat_format=row[7],
        backend=row[8],
        messages=tuple(tree.message(message_id) for message_id in path),
        current_leaf_id=leaf,
        pinned=bool(row[10]),
    )


def _insert_message(
    db: sqlite3.Connection, chat_id: int, values: dict[str, Any], parent_id: ParentChoice
) -> int:
    chat = db.execute("SELECT title, current_leaf_id FROM chats WHERE id = ?", (chat_id,))
    chat = chat.fetchone()
    if chat is None:
        raise ChatNotFoundError(f"no chat with id {chat_id}")
    if parent_id == LEAF:
        parent_id = chat[1]
        held = (
            parent_id is not None
            and db.execute(
                "SELECT 1 FROM messages WHERE id = ? AND chat_id = ?", (parent_id, chat_id)
            ).fetchone()
        )
        if not held:  # unset or stale (deleted meanwhile): the end of the branch shown now
            parent_id = _current_leaf(db, chat_id, _Tree.read(db, chat_id))
    elif parent_id is not None:
        if isinstance(parent_id, bool) or not isinstance(parent_id, int):
            raise MessageNotFoundError(f"message id {parent_id!r} must be a whole number")
        found = db.execute("SELECT chat_id FROM messages WHERE id = ?", (parent_id,)).fetchone()
        if found is None or found[0] != chat_id:
            raise MessageNotFoundError(f"no message with id {parent_id} in this chat")
    # Safe without races: we hold the write lock (BEGIN IMMEDIATE) until COMMIT.
    position = db.execute(
        "SELECT coalesce(max(position) + 1, 0) FROM messages WHERE chat_id = ?", (chat_id,)
    ).fetchone()[0]
    row = {
        "model": "",
        "format": "",
        "status": "complete",
        "error": "",
        "writer": "",
        "finish_reason": "",
        "created": now(),
        **dict.fromkeys(FIGURE_FIELDS),
        **values,
        "chat_id": chat_id,
        "position": position,
        "parent_id": parent_id,
    }
    cursor = db.execute(
        "INSERT INTO messages (chat_id, position, role, content, created, model, format, "
        "status, error, writer, prompt_tokens, completion_tokens, time_to_first_token_s, "
        "tokens_per_second, parent_id, finish_reason) VALUES (:chat_id, :position, :role, "
        ":content, :created, :model, :format, :status, :error, :writer, :prompt_tokens, "
        ":completion_tokens, :time_to_first_token_s, :tokens_per_second, :parent_id, "
        ":finish_reason)",
        row,
    )
    message_id = int(cursor.lastrowid)
    if parent_id is not None:
        db.execute("UPDATE messages SET last_child_id = ? WHERE id = ?", (message_id, parent_id))
    stamp = now()
    db.execute(
        "UPDATE chats SET current_leaf_id = ?, updated = ? WHERE id = ?",
        (message_id, stamp, chat_id),
    )
    if not chat[0] and values["role"] == "user":
        title = title_from_message(values["content"])
        db.execute("UPDATE chats SET title = ? WHERE id = ?", (title, chat_id))
    return message_id


def _search(db: sqlite3.Connection, query: str, words: str, limit: int) -> list[ChatHit]:
    """Chats matching an FTS5 `query`: titles first, then by their best message's bm25."""
    titles = db.execute(
        "SELECT rowid FROM chat_title_terms WHERE chat_title_terms MATCH ? "
        "ORDER BY bm25(chat_title_terms) LIMIT 1000",
        (query,),
    ).fetchall()
    best: dict[int, int] = {}  # chat id -> its best message id
    for chat_id, message_id in db.execute(
        "SELECT m.chat_id, m.id FROM message_terms t JOIN messages m ON m.id = t.rowid "
        "WHERE message_terms MATCH ? ORDER BY bm25(message_terms), m.id DESC LIMIT 5000",
        (query,),
    ):
        best.setdefault(chat_id, message_id)
    order = list(dict.fromkeys([row[0] for row in titles] + list(best)))[:limit]
    hits = []
    for chat_id in order:
        title, updated = db.execute(
            "SELECT title, updated FROM chats WHERE id = ?", (chat_id,)
        ).fetchone()
        message_id = best.get(chat_id)
        text = title
        if message_id is not None:
            text = db.execute("SELECT content FROM messages WHERE id = ?", (message_id,))
            text = text.fetchone()[0]
        pieces = snippet_pieces(words, text, width=_SNIPPET_CHARS)
        hits.append(ChatHit(chat_id, title, message_id, pieces, updated))
    return hits


# -- checks --------------------------------------------------------------------------------


def _message_values(
    role: str,
    content: str,
    model: str,
    format: str,
    status: str,
    error: str,
    figures: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A message's columns, checked and made storable."""
    if role not in ROLES:
        raise StorageError(f"role {role!r} must be one of {', '.join(ROLES)}")
    if status not in STATUSES:
        raise StorageError(f"status {status!r} must be one of {', '.join(STATUSES)}")
    return {
        "role": role,
        "content": clean_text(content),
        "model": clean_text(model),
        "format": clean_text(format),
        "status": status,
        "error": clean_text(error),
        **_checked_figures(figures),
    }


def _checked_finish(reason: Any) -> str:
    if reason not in FINISH_REASONS:
        raise StorageError(
            f"finish reason {reason!r} must be one of {', '.join(map(repr, FINISH_REASONS))}"
        )
    return reason


def _checked_figures(figures: Mapping[str, Any] | None) -> dict[str, Any]:
    figures = figures or {}
    values: dict[str, Any] = {}
    for key in FIGURE_FIELDS:
        value = figures.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise StorageError(f"figure {key} = {value!r} must be a number")
        values[key] = value
    return values
