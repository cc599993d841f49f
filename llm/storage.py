"""The chat history: `ChatStore`, every conversation kept in one SQLite file.

The file is `<data_dir>/localchat.db`. Several processes (the web app, `python -m llm`) and
threads may write at once: WAL mode lets readers run beside a writer, each write is one short
`BEGIN IMMEDIATE` transaction, and a busy database is waited for (busy_timeout, then retries)
instead of surfacing "database is locked". The schema is upgraded at open by `llm.migrations`;
a database written by a newer LocalChat is refused and left untouched.

A reply is stored while it streams: `start_reply` (status "streaming"), `update_reply` with
the partial text, `finish_reply` with how it ended. A reply still "streaming" whose process
has died was cut by a crash: opening the store marks it "interrupted".

Also here: export to Markdown and JSON, and import of a JSON export as a new chat.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import psutil

from . import migrations
from .config import FORMAT_CHOICES, LOCAL_BACKEND, SamplingParams, valid_backend_name
from .errors import ChatImportError, ChatNotFoundError, ConfigError, StorageError
from .figures import Figures
from .markdown_text import close_open_fence

DB_FILE_NAME = "localchat.db"
ROLES = ("user", "assistant")
STATUSES = ("complete", "streaming", "stopped", "failed", "interrupted")
REPLY_END_STATUSES = ("complete", "stopped", "failed")
FIGURE_FIELDS = ("prompt_tokens", "completion_tokens", "time_to_first_token_s", "tokens_per_second")
EXPORT_FORMAT = "localchat-chat"
EXPORT_VERSION = 1
TITLE_MAX_CHARS = 200
AUTO_TITLE_CHARS = 60
IMPORT_MAX_BYTES = 64 * 1024 * 1024

_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SAMPLING_TYPES = {f.name: type(f.default) for f in dataclasses.fields(SamplingParams)}
_SAMPLING_FIELDS = set(_SAMPLING_TYPES)
T = TypeVar("T")


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

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the web pages."""
        return dataclasses.asdict(self)

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


@dataclass(frozen=True)
class StoredChat:
    """A chat with its settings and messages (in order)."""

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

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON and the web pages."""
        return dataclasses.asdict(self)


# -- text and time -----------------------------------------------------------------------


def now() -> str:
    """The current time as stored: ISO 8601, UTC, milliseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def clean_text(text: str) -> str:
    """`text` made storable: lone surrogates (invalid Unicode, e.g. from a browser or a JSON
    file) become U+FFFD. Null bytes and everything else are kept as they are."""
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    return _SURROGATES.sub("\ufffd", text)


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", clean_text(text)).split())


def title_from_message(text: str) -> str:
    """A chat title from its first message: one line, at most AUTO_TITLE_CHARS characters."""
    line = _one_line(text)
    if len(line) <= AUTO_TITLE_CHARS:
        return line
    cut = line[: AUTO_TITLE_CHARS - 1]
    space = cut.rfind(" ")
    if space >= AUTO_TITLE_CHARS // 2:  # end on a whole word when one is near
        cut = cut[:space]
    return cut.rstrip() + "…"


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
    ) -> int:
        """A new, empty chat; returns its id. An empty title is set from the first message."""
        row = {
            "title": _checked_title(title) if title.strip() else "",
            "system_prompt": clean_text(system_prompt),
            "settings_json": json.dumps(_checked_settings(settings)),
            "model": clean_text(model),
            "chat_format": _checked_format(chat_format),
            "backend": _checked_backend(backend),
        }

        def work(db: sqlite3.Connection) -> int:
            stamp = now()
            cursor = db.execute(
                "INSERT INTO chats (title, created, updated, system_prompt, settings_json, "
                "model, chat_format, backend) VALUES (:title, :created, :created, "
                ":system_prompt, :settings_json, :model, :chat_format, :backend)",
                {**row, "created": stamp},
            )
            return int(cursor.lastrowid)

        return self._write(work)

    def list_chats(self, limit: int | None = None) -> list[ChatSummary]:
        """Chats, the most recently active first."""

        def work(db: sqlite3.Connection) -> list[ChatSummary]:
            rows = db.execute(
                "SELECT c.id, c.title, c.created, c.updated, c.model, "
                "(SELECT count(*) FROM messages m WHERE m.chat_id = c.id), c.backend "
                "FROM chats c ORDER BY c.updated DESC, c.id DESC LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
            return [ChatSummary(*row) for row in rows]

        return self._read(work)

    def get_chat(self, chat_id: int) -> StoredChat:
        """A chat with all its messages."""

        def work(db: sqlite3.Connection) -> StoredChat:
            row = db.execute(
                "SELECT id, title, created, updated, system_prompt, settings_json, model, "
                "chat_format, backend FROM chats WHERE id = ?",
                (chat_id,),
            ).fetchone()
            if row is None:
                raise ChatNotFoundError(f"no chat with id {chat_id}")
            messages = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY position",
                (chat_id,),
            ).fetchall()
            return StoredChat(
                id=row[0],
                title=row[1],
                created=row[2],
                updated=row[3],
                system_prompt=row[4],
                settings=_settings_from_json(row[5]),
                model=row[6],
                chat_format=row[7],
                backend=row[8],
                messages=tuple(StoredMessage(*m) for m in messages),
            )

        return self._read(work)

    def rename_chat(self, chat_id: int, title: str) -> None:
        """Give a chat a new title (one line, 1 to 200 characters)."""
        title = _checked_title(title)
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
            changes["settings_json"] = json.dumps(_checked_settings(settings))
        if model is not None:
            changes["model"] = clean_text(model)
        if chat_format is not None:
            changes["chat_format"] = _checked_format(chat_format)
        if backend is not None:
            changes["backend"] = _checked_backend(backend)
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
    ) -> int:
        """Append a finished message to a chat (committed on return); returns its id.

        The chat's first user message gives it its title if it has none.
        """
        if role not in ROLES:
            raise StorageError(f"role {role!r} must be one of {', '.join(ROLES)}")
        if status not in STATUSES:
            raise StorageError(f"status {status!r} must be one of {', '.join(STATUSES)}")
        values = {
            "role": role,
            "content": clean_text(content),
            "model": clean_text(model),
            "format": clean_text(format),
            "status": status,
            "error": clean_text(error),
            **_checked_figures(figures),
        }
        return self._write(lambda db: _insert_message(db, chat_id, values))

    def start_reply(
        self, chat_id: int, *, model: str = "", format: str = "", backend: str = LOCAL_BACKEND
    ) -> int:
        """Add an empty assistant message with status "streaming"; returns its id.

        `model` (on `backend`) also becomes the chat's model: the one it continues with when
        it is reopened.
        """
        values = {"model": clean_text(model), "format": clean_text(format)}
        backend = _checked_backend(backend)
        return self._write(lambda db: self._insert_reply(db, chat_id, values, backend))

    def begin_exchange(
        self,
        chat_id: int,
        text: str,
        *,
        model: str = "",
        format: str = "",
        backend: str = LOCAL_BACKEND,
    ) -> tuple[int, int]:
        """Add a user message and the start of its reply in one transaction, before
        generation starts; returns (user message id, reply id). Keeping both in one commit
        keeps each reply right after its question even when two tabs write to one chat."""
        user = {"role": "user", "content": clean_text(text), "model": "", "format": ""}
        reply = {"model": clean_text(model), "format": clean_text(format)}
        backend = _checked_backend(backend)

        def work(db: sqlite3.Connection) -> tuple[int, int]:
            user_id = _insert_message(db, chat_id, user)
            return user_id, self._insert_reply(db, chat_id, reply, backend)

        return self._write(work)

    def _insert_reply(
        self, db: sqlite3.Connection, chat_id: int, values: dict[str, Any], backend: str
    ) -> int:
        values = {**values, "role": "assistant", "content": "", "status": "streaming"}
        values["writer"] = self._writer
        message_id = _insert_message(db, chat_id, values)
        if values["model"]:
            db.execute(
                "UPDATE chats SET model = ?, backend = ? WHERE id = ?",
                (values["model"], backend, chat_id),
            )
        return message_id

    def forget_exchange(self, user_message_id: int, reply_id: int) -> bool:
        """Remove a question and its reply, which never started (the model refused the
        question): as if it had never been sent. A chat left empty that the question had
        named is deleted too; returns whether it was."""

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT m.chat_id, m.content, c.title FROM messages m JOIN chats c "
                "ON c.id = m.chat_id WHERE m.id = ? AND m.role = 'user'",
                (user_message_id,),
            ).fetchone()
            if row is None:  # the chat was deleted meanwhile
                return False
            chat_id, question, title = row
            db.execute(
                "DELETE FROM messages WHERE chat_id = ? AND id IN (?, ?)",
                (chat_id, user_message_id, reply_id),
            )
            left = db.execute("SELECT count(*) FROM messages WHERE chat_id = ?", (chat_id,))
            if left.fetchone()[0] or title != title_from_message(question):
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

    def finish_reply(
        self,
        message_id: int,
        *,
        status: str,
        text: str,
        figures: Mapping[str, Any] | None = None,
        format: str | None = None,
        error: str = "",
    ) -> bool:
        """Record how a reply ended: status "complete", "stopped" (by the user) or "failed"
        (with `error`), its final text and figures. False if the message no longer exists."""
        if status not in REPLY_END_STATUSES:
            raise StorageError(f"status {status!r} must be one of {', '.join(REPLY_END_STATUSES)}")
        values = {
            "status": status,
            "content": clean_text(text),
            "error": clean_text(error),
            "id": message_id,
            "stamp": now(),
            **_checked_figures(figures),
        }
        set_format = ", format = :format" if format else ""
        if format:
            values["format"] = clean_text(format)

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE messages SET status = :status, content = :content, error = :error, "
                "writer = '', prompt_tokens = :prompt_tokens, "
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

    # -- export and import ---------------------------------------------------------------
    def export_markdown(self, chat_id: int) -> str:
        """The chat as a Markdown document, for reading."""
        return chat_to_markdown(self.get_chat(chat_id))

    def export_json(self, chat_id: int) -> str:
        """The chat as a JSON document that `import_json` reads back."""
        return json.dumps(chat_to_export(self.get_chat(chat_id)), ensure_ascii=False, indent=2)

    def import_json(self, data: str | bytes) -> int:
        """Store a JSON export as a new chat; returns its id. The whole document is checked
        first (ChatImportError naming the bad field); nothing is stored if it is invalid."""
        chat = parse_export(data)
        messages = chat.pop("messages")

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO chats (title, created, updated, system_prompt, settings_json, "
                "model, chat_format, backend) VALUES (:title, :created, :updated, "
                ":system_prompt, :settings_json, :model, :chat_format, :backend)",
                {**chat, "updated": now()},
            )
            chat_id = int(cursor.lastrowid)
            for message in messages:
                _insert_message(db, chat_id, message)
            return chat_id

        return self._write(work)


_MESSAGE_COLUMNS = (
    "id, chat_id, position, role, content, created, model, format, status, error, "
    "prompt_tokens, completion_tokens, time_to_first_token_s, tokens_per_second"
)


def _require(cursor: sqlite3.Cursor, chat_id: int) -> None:
    if cursor.rowcount == 0:
        raise ChatNotFoundError(f"no chat with id {chat_id}")


def _insert_message(db: sqlite3.Connection, chat_id: int, values: dict[str, Any]) -> int:
    chat = db.execute("SELECT title FROM chats WHERE id = ?", (chat_id,)).fetchone()
    if chat is None:
        raise ChatNotFoundError(f"no chat with id {chat_id}")
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
        "created": now(),
        **dict.fromkeys(FIGURE_FIELDS),
        **values,
        "chat_id": chat_id,
        "position": position,
    }
    cursor = db.execute(
        "INSERT INTO messages (chat_id, position, role, content, created, model, format, "
        "status, error, writer, prompt_tokens, completion_tokens, time_to_first_token_s, "
        "tokens_per_second) VALUES (:chat_id, :position, :role, :content, :created, :model, "
        ":format, :status, :error, :writer, :prompt_tokens, :completion_tokens, "
        ":time_to_first_token_s, :tokens_per_second)",
        row,
    )
    stamp = now()
    if not chat[0] and values["role"] == "user":
        title = title_from_message(values["content"])
        db.execute("UPDATE chats SET title = ?, updated = ? WHERE id = ?", (title, stamp, chat_id))
    else:
        db.execute("UPDATE chats SET updated = ? WHERE id = ?", (stamp, chat_id))
    return int(cursor.lastrowid)


# -- checks --------------------------------------------------------------------------------


def _checked_title(title: str) -> str:
    line = _one_line(title)
    if not line:
        raise StorageError("a chat title cannot be empty")
    if len(line) > TITLE_MAX_CHARS:
        raise StorageError(f"a chat title can have at most {TITLE_MAX_CHARS} characters")
    return line


def _checked_format(chat_format: str) -> str:
    if chat_format not in FORMAT_CHOICES:
        raise StorageError(
            f"chat format {chat_format!r} must be one of {', '.join(FORMAT_CHOICES)}"
        )
    return chat_format


def _checked_backend(backend: str) -> str:
    if not valid_backend_name(backend):
        raise StorageError(f"backend {backend!r} must be 1 to 64 letters, digits, '.', '_' or '-'")
    return backend


def _checked_settings(settings: SamplingParams | Mapping[str, Any] | None) -> dict[str, Any]:
    if settings is None:
        return {}
    if isinstance(settings, SamplingParams):
        return dataclasses.asdict(settings)
    unknown = sorted(set(settings) - _SAMPLING_FIELDS)
    if unknown:
        known = ", ".join(sorted(_SAMPLING_FIELDS))
        raise StorageError(f"unknown generation setting {unknown[0]!r} (known: {known})")
    for key, value in settings.items():
        kind = _SAMPLING_TYPES[key]
        if kind is bool:
            ok, name = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, name = isinstance(value, int) and not isinstance(value, bool), "an integer"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            name = "a number"
        if not ok:
            raise StorageError(f"generation setting {key} = {value!r} must be {name}")
    try:
        SamplingParams().replace(**settings)
    except ConfigError as exc:
        raise StorageError(f"generation setting {exc}") from None
    return dict(settings)


def _settings_from_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    # Only fields this version knows; the config fills in the rest.
    return (
        {k: v for k, v in data.items() if k in _SAMPLING_FIELDS} if isinstance(data, dict) else {}
    )


def _checked_figures(figures: Mapping[str, Any] | None) -> dict[str, Any]:
    figures = figures or {}
    values: dict[str, Any] = {}
    for key in FIGURE_FIELDS:
        value = figures.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise StorageError(f"figure {key} = {value!r} must be a number")
        values[key] = value
    return values


# -- export formats ------------------------------------------------------------------------

_STATUS_NOTES = {
    "stopped": "Stopped before the end.",
    "failed": "Failed",
    "interrupted": "Interrupted: LocalChat stopped while this reply was being written.",
    "streaming": "Still being written when this was exported.",
}


def _md_text(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # NUL makes tools treat the file as binary


def _md_time(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def chat_to_markdown(chat: StoredChat) -> str:
    """A chat as Markdown: title, facts, system prompt, then each message under a heading."""
    lines = [f"# {_md_text(chat.title) or 'New chat'}", ""]
    lines.append(f"- Created: {_md_time(chat.created)}")
    if chat.model:
        where = "" if chat.backend == LOCAL_BACKEND else f" on {_md_text(chat.backend)}"
        lines.append(f"- Model: {_md_text(chat.model)}{where} (format {chat.chat_format})")
    if chat.settings:
        settings = ", ".join(f"{k} {v}" for k, v in chat.settings.items())
        lines.append(f"- Settings: {settings}")
    lines.append("")
    if chat.system_prompt:
        lines += ["## System prompt", "", _md_text(chat.system_prompt), ""]
    for message in chat.messages:
        heading = "User" if message.role == "user" else "Assistant"
        lines += [f"## {heading} · {_md_time(message.created)}", ""]
        if message.content:  # a code block left open would swallow the rest
            lines += [close_open_fence(_md_text(message.content)), ""]
        notes = []
        if message.status in _STATUS_NOTES:
            note = _STATUS_NOTES[message.status]
            notes.append(f"{note}: {message.error}" if message.error else note)
        if message.figures is not None:
            notes.append(message.figures.line())
        if notes:
            lines += [f"*{_md_text(' · '.join(notes))}*", ""]
    return "\n".join(lines)


def chat_to_export(chat: StoredChat) -> dict[str, Any]:
    """A chat as the JSON-ready export document (see `parse_export`)."""
    messages = []
    for message in chat.messages:
        row = message.to_dict()
        for key in ("id", "chat_id", "position"):
            del row[key]
        messages.append(row)
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported": now(),
        "chat": {
            "title": chat.title,
            "created": chat.created,
            "updated": chat.updated,
            "system_prompt": chat.system_prompt,
            "settings": chat.settings,
            "model": chat.model,
            "chat_format": chat.chat_format,
            "backend": chat.backend,
            "messages": messages,
        },
    }


def _text(data: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ChatImportError(f"{where}.{key} must be a string")
    return value


def _stamp(data: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(data, key, where)
    if not value:
        return now()
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ChatImportError(f"{where}.{key} = {value!r} is not an ISO 8601 time") from None
    return value


def parse_export(data: str | bytes) -> dict[str, Any]:
    """Check a JSON export and return a chat row with its "messages" ready to insert.

    Raises ChatImportError naming the first problem.
    """
    if len(data) > IMPORT_MAX_BYTES:
        raise ChatImportError("the file is too large for a chat export (over 64 MB)")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ChatImportError(f"the file is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ChatImportError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ChatImportError(f'not a LocalChat chat export (no "format": "{EXPORT_FORMAT}")')
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ChatImportError("version must be a positive integer")
    if version > EXPORT_VERSION:
        raise ChatImportError(
            f"the export is from a newer LocalChat (version {version}; this one reads "
            f"up to {EXPORT_VERSION})"
        )
    chat = document.get("chat")
    if not isinstance(chat, dict):
        raise ChatImportError('"chat" must be an object')
    settings = chat.get("settings", {})
    if not isinstance(settings, dict):
        raise ChatImportError("chat.settings must be an object")
    try:
        settings = _checked_settings(settings)
        chat_format = _checked_format(_text(chat, "chat_format", "chat", "auto"))
        backend = _checked_backend(_text(chat, "backend", "chat", LOCAL_BACKEND))
    except StorageError as exc:
        raise ChatImportError(f"chat: {exc}") from None
    raw_messages = chat.get("messages")
    if not isinstance(raw_messages, list):
        raise ChatImportError("chat.messages must be a list")
    messages = [_parse_message(m, f"chat.messages[{i}]") for i, m in enumerate(raw_messages)]
    title = _text(chat, "title", "chat")
    if len(_one_line(title)) > TITLE_MAX_CHARS:
        raise ChatImportError(f"chat.title can have at most {TITLE_MAX_CHARS} characters")
    if not _one_line(title):
        first = next((m["content"] for m in messages if m["role"] == "user"), "")
        title = first and title_from_message(first)
    return {
        "title": _one_line(title),
        "created": _stamp(chat, "created", "chat"),
        "system_prompt": clean_text(_text(chat, "system_prompt", "chat")),
        "settings_json": json.dumps(settings),
        "model": clean_text(_text(chat, "model", "chat")),
        "chat_format": chat_format,
        "backend": backend,
        "messages": messages,
    }


def _parse_message(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ChatImportError(f"{where} must be an object")
    role = data.get("role")
    if role not in ROLES:
        raise ChatImportError(f"{where}.role must be one of {', '.join(ROLES)}")
    if not isinstance(data.get("content"), str):
        raise ChatImportError(f"{where}.content must be a string")
    status = _text(data, "status", where, "complete")
    if status not in STATUSES:
        raise ChatImportError(f"{where}.status must be one of {', '.join(STATUSES)}")
    if status == "streaming":  # no process is writing it here
        status = "interrupted"
    figures = {}
    for key in FIGURE_FIELDS:
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise ChatImportError(f"{where}.{key} must be a number, at least 0, or null")
        if key in ("prompt_tokens", "completion_tokens") and isinstance(value, float):
            if not value.is_integer():
                raise ChatImportError(f"{where}.{key} must be a whole number")
            value = int(value)
        figures[key] = value
    return {
        "role": role,
        "content": clean_text(data["content"]),
        "created": _stamp(data, "created", where),
        "model": clean_text(_text(data, "model", where)),
        "format": clean_text(_text(data, "format", where)),
        "status": status,
        "error": clean_text(_text(data, "error", where)),
        **figures,
    }
