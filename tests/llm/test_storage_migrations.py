"""Schema versions: a version-1 file (older layout, built here with raw SQL) is upgraded at
open with its data kept; a failed migration changes nothing; a newer file is refused and left
byte-identical, by the library and by the command line."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llm import migrations
from llm.chat_export import chat_to_markdown
from llm.errors import StorageError
from llm.storage import DB_FILE_NAME, ChatStore

# The layout of schema version 1, as an older LocalChat wrote it.
V1_SCHEMA = [
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
    "PRAGMA user_version = 1",
]
T0 = "2024-05-01T10:00:00.000+00:00"
T1 = "2024-05-02T10:00:00.000+00:00"


def make_v1_database(path: Path) -> None:
    db = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        db.execute(statement)
    db.execute(
        "INSERT INTO chats VALUES (1, 'Old chat', ?, ?, 'Be brief.', 'tinyllama.gguf')", (T0, T0)
    )
    db.execute("INSERT INTO chats VALUES (2, 'Newer chat', ?, ?, '', '')", (T1, T1))
    db.executemany(
        "INSERT INTO messages (chat_id, position, role, content, created) VALUES (?, ?, ?, ?, ?)",
        [
            (1, 0, "user", "Capital of France?", T0),
            (1, 1, "assistant", "Paris.", T0),
            (2, 0, "user", "Hello", T1),
        ],
    )
    db.commit()
    db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_migrations_are_a_numbered_append_only_list() -> None:
    names = [fn.__name__ for fn in migrations.MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert [int(re.match(r"m(\d{3})_", n).group(1)) for n in names] == list(
        range(1, len(names) + 1)
    )
    assert migrations.SCHEMA_VERSION == len(names) >= 2


def test_version_1_database_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE_NAME
    make_v1_database(path)
    with ChatStore(path) as store:
        assert store.schema_version == migrations.SCHEMA_VERSION
        assert [c.id for c in store.list_chats()] == [2, 1]
        old = store.get_chat(1)
        assert (old.title, old.system_prompt, old.model) == (
            "Old chat",
            "Be brief.",
            "tinyllama.gguf",
        )
        assert old.settings == {} and old.chat_format == "auto"  # defaults of new columns
        assert old.backend == "local"  # chats from before remote backends ran here
        assert [(m.role, m.content, m.status, m.created) for m in old.messages] == [
            ("user", "Capital of France?", "complete", T0),
            ("assistant", "Paris.", "complete", T0),
        ]
        assert old.messages[1].completion_tokens is None
        # the upgraded file works like a new one
        reply = store.start_reply(1, model="tinyllama.gguf", format="zephyr")
        store.finish_reply(reply, status="stopped", text="Rome", figures={"completion_tokens": 1})
        assert store.get_chat(1).messages[-1].status == "stopped"
        store.delete_chat(2)  # the v1 foreign key still cascades
        assert "Old chat" in chat_to_markdown(store.get_chat(1))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("SELECT count(*) FROM messages WHERE chat_id = 2").fetchone()[0] == 0
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.execute("UPDATE messages SET status = 'bogus'")
    db.close()


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE_NAME
    make_v1_database(path)

    def m003_broken(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE messages ADD COLUMN half_done TEXT")
        db.execute("SELECT * FROM no_such_table")

    steps = [*migrations.MIGRATIONS[:2], m003_broken]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        migrations.upgrade(db, steps)
    db.execute("ROLLBACK")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
    assert columns == {"id", "chat_id", "position", "role", "content", "created"}
    db.close()
    with ChatStore(path) as store:  # and the real migrations still apply afterwards
        assert store.schema_version == migrations.SCHEMA_VERSION


@pytest.fixture
def newer_database(tmp_path: Path) -> Path:
    path = tmp_path / "data" / DB_FILE_NAME
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE chats (id INTEGER PRIMARY KEY, future_column BLOB)")
    db.execute("INSERT INTO chats VALUES (1, x'00ff')")
    db.execute(f"PRAGMA user_version = {migrations.SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    return path


def test_newer_database_is_refused_and_left_byte_identical(newer_database: Path) -> None:
    before = digest(newer_database)
    with pytest.raises(StorageError) as caught:
        ChatStore(newer_database)
    message = str(caught.value)
    assert "written by a newer LocalChat" in message
    assert f"database version {migrations.SCHEMA_VERSION + 1}" in message
    assert "left unchanged" in message
    assert digest(newer_database) == before
    assert sorted(p.name for p in newer_database.parent.iterdir()) == [DB_FILE_NAME]
    db = sqlite3.connect(newer_database)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    db.close()


def test_command_line_refuses_a_newer_database_in_one_line(
    newer_database: Path, project_env: dict[str, str]
) -> None:
    before = digest(newer_database)
    result = subprocess.run(
        [sys.executable, "-m", "llm", "--data-dir", str(newer_database.parent), "chats"],
        capture_output=True,
        text=True,
        env=project_env,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and "newer LocalChat" in result.stderr
    assert digest(newer_database) == before
