"""Schema changes of the chat database (`localchat.db`), oldest first.

The database's schema version is `PRAGMA user_version`: the number of migrations applied.
`upgrade` runs the missing ones, in order, inside the caller's write transaction, so a
failure leaves the file exactly as it was. The list is append-only: never edit, reorder or
remove a migration once it has shipped; change the schema by adding a new function at the end.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from .text_search import indexed_form

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration (its position gives its version)."""
    MIGRATIONS.append(fn)
    return fn


def _run(db: sqlite3.Connection, *statements: str) -> None:
    # One statement at a time: executescript() would COMMIT the caller's transaction first.
    for statement in statements:
        db.execute(statement)


@migration
def m001_chats_and_messages(db: sqlite3.Connection) -> None:
    # AUTOINCREMENT: ids of deleted chats are never reused, so a stale link or an open tab
    # can never show another conversation.
    _run(
        db,
        """CREATE TABLE chats (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_id INTEGER NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            created TEXT NOT NULL,
            UNIQUE (chat_id, position)
        )""",
    )


@migration
def m002_generation_settings(db: sqlite3.Connection) -> None:
    # Reopening a chat restores how it was generated; each message records what wrote it.
    _run(
        db,
        "ALTER TABLE chats ADD COLUMN settings_json TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE chats ADD COLUMN chat_format TEXT NOT NULL DEFAULT 'auto'",
        "ALTER TABLE messages ADD COLUMN model TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN format TEXT NOT NULL DEFAULT ''",
    )


@migration
def m003_reply_status_and_figures(db: sqlite3.Connection) -> None:
    # Replies are saved while they stream: a cut one is kept and marked, never shown as
    # complete. `writer` names the process streaming a reply, so a reply whose process died
    # can be told from one another process is still writing.
    _run(
        db,
        "ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'complete' CHECK "
        "(status IN ('complete', 'streaming', 'stopped', 'failed', 'interrupted'))",
        "ALTER TABLE messages ADD COLUMN error TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN writer TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER",
        "ALTER TABLE messages ADD COLUMN completion_tokens INTEGER",
        "ALTER TABLE messages ADD COLUMN time_to_first_token_s REAL",
        "ALTER TABLE messages ADD COLUMN tokens_per_second REAL",
        "CREATE INDEX chats_by_updated ON chats (updated)",
        "CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming'",
    )


@migration
def m004_chat_backend(db: sqlite3.Connection) -> None:
    # A chat remembers where its model runs: "local" (llama.cpp here) or a [[backends]] name,
    # so reopening it continues on the same server and model.
    _run(db, "ALTER TABLE chats ADD COLUMN backend TEXT NOT NULL DEFAULT 'local'")


@migration
def m005_message_tree(db: sqlite3.Connection) -> None:
    # Messages form a tree: editing or regenerating adds a sibling, nothing is overwritten.
    # `position` stays the order of insertion in the chat (still unique), so a parent always
    # comes before its children. `last_child_id` is the child whose branch was last shown
    # below a message (switching back to a message shows that branch again); a chat's
    # `current_leaf_id` ends its visible branch. Neither is a foreign key: a stale one (its
    # message deleted) is ignored when read. Every existing chat becomes one branch: each
    # message's parent is the one before it. `finish_reason` tells a reply cut at the token
    # limit ("length") from one that ended ("stop"); "" is unknown (older replies).
    _run(
        db,
        "ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages (id)",
        "ALTER TABLE messages ADD COLUMN last_child_id INTEGER",
        "ALTER TABLE messages ADD COLUMN finish_reason TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE chats ADD COLUMN current_leaf_id INTEGER",
        "ALTER TABLE chats ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
        """UPDATE messages SET parent_id = (
            SELECT p.id FROM messages p WHERE p.chat_id = messages.chat_id
            AND p.position < messages.position ORDER BY p.position DESC LIMIT 1)""",
        "CREATE INDEX messages_by_parent ON messages (parent_id)",
        """UPDATE messages SET last_child_id = (
            SELECT c.id FROM messages c WHERE c.parent_id = messages.id)""",
        """UPDATE chats SET current_leaf_id = (
            SELECT m.id FROM messages m WHERE m.chat_id = chats.id
            ORDER BY m.position DESC LIMIT 1)""",
    )


def register_functions(db: sqlite3.Connection) -> None:
    """SQL functions the schema's triggers call: `localchat_terms(blob)`, the form of a text
    that the search index holds (`llm.text_search.indexed_form`). Every connection that
    writes chats needs them; a tool without them cannot change a message (its trigger fails),
    which keeps the index from going stale."""
    db.create_function("localchat_terms", 1, _terms, deterministic=True)


def _terms(raw: bytes | None) -> str:
    # Given bytes (CAST AS BLOB): text another tool wrote need not be valid UTF-8.
    return indexed_form(raw.decode("utf-8", "replace")) if raw else ""


@migration
def m006_chat_search(db: sqlite3.Connection) -> None:
    # Full-text search over chat titles and messages. The index holds `indexed_form` of each
    # text (Hangul as two-syllable pieces: FTS5's tokenizers miss Korean words, see
    # llm.text_search); rowid = the message's or chat's id. Triggers keep it in step with
    # every insert, edit and delete (also deletes cascaded from a chat). The text goes to
    # localchat_terms as bytes: another tool may have written invalid UTF-8.
    register_functions(db)
    for index, table, column in (
        ("message_terms", "messages", "content"),
        ("chat_title_terms", "chats", "title"),
    ):
        terms = f"localchat_terms(CAST(new.{column} AS BLOB))"
        add = f"INSERT INTO {index} (rowid, terms) VALUES (new.id, {terms});"
        remove = f"DELETE FROM {index} WHERE rowid = old.id;"
        _run(
            db,
            f"CREATE VIRTUAL TABLE {index} USING fts5 "
            "(terms, tokenize = 'unicode61 remove_diacritics 2')",
            f"INSERT INTO {index} (rowid, terms) "
            f"SELECT id, localchat_terms(CAST({column} AS BLOB)) FROM {table}",
            f"CREATE TRIGGER {index}_insert AFTER INSERT ON {table} BEGIN {add} END",
            f"CREATE TRIGGER {index}_update AFTER UPDATE OF {column} ON {table} "
            f"BEGIN {remove} {add} END",
            f"CREATE TRIGGER {index}_delete AFTER DELETE ON {table} BEGIN {remove} END",
        )


SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    """The database's schema version (0: a new, empty file)."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def upgrade(db: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the migrations the database lacks; returns their names.

    Call inside a write transaction (BEGIN IMMEDIATE) after checking that the database is
    not newer than `len(migrations)`.
    """
    current = schema_version(db)
    applied = []
    for version, fn in enumerate(migrations[current:], start=current + 1):
        fn(db)
        # PRAGMA takes no parameters; `version` is an int we computed.
        db.execute(f"PRAGMA user_version = {int(version)}")
        applied.append(fn.__name__)
    return applied
