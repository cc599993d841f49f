"""Schema changes of the documents database (`documents.db`, beside the chat database), oldest
first. Append-only, applied by `llm.migrations.upgrade` exactly as the chat database's are: a
separate file and list, so documents never wait on (or collide with) the chats' migrations."""

from __future__ import annotations

import sqlite3

from ..migrations import Migration

MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration of the documents database."""
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_collections(db: sqlite3.Connection) -> None:
    statements = (
        # embedder: what made the vectors ("wordllama", "gguf:FILE", "remote:BACKEND/MODEL");
        # revision: bumped by every change of its chunks, so searches know a cache is stale.
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            created TEXT NOT NULL,
            embedder TEXT NOT NULL,
            dimensions INTEGER NOT NULL DEFAULT 0,
            revision INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE collection_paths (
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            PRIMARY KEY (collection_id, path)
        )""",
        # A file is 'indexed' only in the transaction that wrote all of its chunks.
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL DEFAULT 0,
            mtime_ns INTEGER NOT NULL DEFAULT 0,
            sha256 TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
            error TEXT NOT NULL DEFAULT '',
            note TEXT NOT NULL DEFAULT '',
            chunk_count INTEGER NOT NULL DEFAULT 0,
            indexed TEXT NOT NULL DEFAULT '',
            UNIQUE (collection_id, path)
        )""",
        # The text as loaded (a PDF page, a section): whole-document mode reads these.
        """CREATE TABLE parts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            page INTEGER,
            section TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL
        )""",
        "CREATE INDEX parts_by_file ON parts (file_id, position)",
        # vector: float32, unit length, NULL until embedded (or after the embedder changed).
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            page INTEGER,
            section TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            vector BLOB
        )""",
        "CREATE INDEX chunks_by_file ON chunks (file_id, position)",
        # rowid = chunks.id; `terms` holds llm.text_search.indexed_form(text).
        "CREATE VIRTUAL TABLE chunk_terms USING fts5 (terms, "
        "tokenize = 'unicode61 remove_diacritics 2')",
        """CREATE TRIGGER chunks_forget_terms AFTER DELETE ON chunks BEGIN
            DELETE FROM chunk_terms WHERE rowid = old.id;
        END""",
        # One indexing job per collection; its row survives a restart, so it can resume.
        """CREATE TABLE jobs (
            collection_id INTEGER PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
            state TEXT NOT NULL
                CHECK (state IN ('running', 'cancelled', 'done', 'failed', 'interrupted')),
            owner TEXT NOT NULL DEFAULT '',
            files_total INTEGER NOT NULL DEFAULT 0,
            files_done INTEGER NOT NULL DEFAULT 0,
            bytes_total INTEGER NOT NULL DEFAULT 0,
            bytes_done INTEGER NOT NULL DEFAULT 0,
            chunks_done INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            current TEXT NOT NULL DEFAULT '',
            error TEXT NOT NULL DEFAULT '',
            started TEXT NOT NULL,
            updated TEXT NOT NULL
        )""",
        # Sources shown under a reply, keyed by the chat database's message id.
        """CREATE TABLE reply_sources (
            message_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            collection TEXT NOT NULL,
            source TEXT NOT NULL,
            page INTEGER,
            section TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            score REAL NOT NULL,
            PRIMARY KEY (message_id, position)
        )""",
        """CREATE TABLE chat_collections (
            chat_id INTEGER NOT NULL,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            PRIMARY KEY (chat_id, collection_id)
        )""",
    )
    for statement in statements:  # one at a time: executescript() would COMMIT first
        db.execute(statement)


SCHEMA_VERSION = len(MIGRATIONS)
