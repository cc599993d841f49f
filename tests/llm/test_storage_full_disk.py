"""A full disk while the chat history is written, on a real SQLite file.

SQLite's SQLITE_FULL ("database or disk is full") must become one clear StorageError; the write
that hit it leaves nothing behind (the database stays whole, earlier chats are intact, a
transaction of several rows is all or nothing), and writing works again once there is room.

Two ways to fill the disk, each test runs with both:
- "page-limit" (everywhere): `PRAGMA max_page_count` on the store's own connection makes SQLite
  fail the way a full disk does (the same SQLITE_FULL code and message), without touching the
  machine's disks.
- "small-filesystem" (root only, otherwise skipped): the data folder on a 512 KB tmpfs, filled
  with a ballast file until write() says ENOSPC: the real thing.

A reply streamed through ChatLog while the disk fills ends "failed" with the reason (the
reader is told, not crashed), and the next reply is stored once there is room again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gguf_factory import write_scripted_model

from llm.chat_export import import_chat
from llm.chat_log import ChatLog
from llm.config import SamplingParams
from llm.engine import Engine
from llm.errors import StorageError
from llm.session import ChatSession
from llm.storage import DB_FILE_NAME, ChatStore

FULL = r"disk holding the chat database .* is full"
# 27-byte tokens: a reply of 200 of them (5.4 KB) needs new database pages as it grows.
LONG_SCRIPT = [f" piece{i:03d}-abcdefghijklmnopq" for i in range(200)]
LONG_REPLY = "".join(LONG_SCRIPT).lstrip()


class PageLimit:
    """SQLITE_FULL from a page budget on the store's connection."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._default: int | None = None

    def fill(self, store: ChatStore, spare_pages: int = 0) -> None:
        """No room left but `spare_pages` database pages."""
        # max_page_count is a setting of one connection: it must be the store's own.
        with store._lock:
            db = store._db
            self._default = db.execute("PRAGMA max_page_count").fetchone()[0]
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
            db.execute(f"PRAGMA max_page_count = {pages + spare_pages}")

    def free(self, store: ChatStore) -> None:
        with store._lock:
            store._db.execute(f"PRAGMA max_page_count = {self._default}")

    def close(self) -> None:
        pass


class SmallFilesystem:
    """ENOSPC from a real, small filesystem (a tmpfs mounted for the test)."""

    SIZE = "1m"  # the chat database holds a search index beside the messages

    def __init__(self, folder: Path) -> None:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a small filesystem needs root")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE},mode=0700", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        self.folder = folder
        self.ballast = folder / "ballast"

    def fill(self, store: ChatStore, spare_pages: int = 0) -> None:
        """Fill the filesystem to the last byte, then give back `spare_pages` pages."""
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            block = b"\0" * 4096
            for _ in range(100_000):  # bounded: far more than 512 KB
                try:
                    os.write(fd, block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
            else:
                raise AssertionError("the small filesystem never filled up")
            if spare_pages:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - spare_pages * 4096))
        finally:
            os.close(fd)

    def free(self, store: ChatStore) -> None:
        self.ballast.unlink()

    def close(self) -> None:
        if subprocess.run(["umount", str(self.folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)


@pytest.fixture(params=["page-limit", "small-filesystem"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PageLimit | SmallFilesystem]:
    kind = PageLimit if request.param == "page-limit" else SmallFilesystem
    made = kind(tmp_path / "data")
    try:
        yield made
    finally:
        made.close()


def integrity(folder: Path) -> list[tuple[str]]:
    """What SQLite itself says about the file, from a connection of its own."""
    with contextlib.closing(sqlite3.connect(folder / DB_FILE_NAME)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


def counts(folder: Path) -> tuple[int, int]:
    with contextlib.closing(sqlite3.connect(folder / DB_FILE_NAME)) as db:
        return (
            db.execute("SELECT count(*) FROM chats").fetchone()[0],
            db.execute("SELECT count(*) FROM messages").fetchone()[0],
        )


def export_of(messages: int, chars: int) -> str:
    """A chat export with `messages` messages of `chars` characters each."""
    rows = [
        {"role": ("user", "assistant")[i % 2], "content": f"{i}:" + "z" * chars}
        for i in range(messages)
    ]
    chat = {"title": "Imported", "messages": rows}
    return json.dumps({"format": "localchat-chat", "version": 1, "chat": chat})


def test_a_full_disk_refuses_writes_clearly_and_keeps_the_database_whole(
    disk: PageLimit | SmallFilesystem,
) -> None:
    export = export_of(messages=6, chars=3000)  # one page or so per message
    with ChatStore.in_folder(disk.folder) as store:
        kept = store.create_chat(title="Kept")
        store.add_message(kept, "user", "What is the capital of France?")
        store.add_message(kept, "assistant", "Paris.")
        before = store.get_chat(kept)
        # Room for a row or two: a write of several rows fails partway through.
        disk.fill(store, spare_pages=2)
        with pytest.raises(StorageError, match=FULL):
            store.add_message(kept, "user", "x" * 20_000)
        with pytest.raises(StorageError, match=FULL):
            store.begin_exchange(kept, "y" * 20_000)  # question and reply: one transaction
        with pytest.raises(StorageError, match=FULL):
            import_chat(store, export)  # a chat and six messages: one transaction
        # Nothing half-written: the earlier chat as it was, no stray chat or message.
        assert store.get_chat(kept) == before
        assert [c.id for c in store.list_chats()] == [kept]
        assert counts(disk.folder) == (1, 2)
        assert integrity(disk.folder) == [("ok",)]
        # Room again: the same writes work.
        disk.free(store)
        store.add_message(kept, "user", "x" * 20_000)
        _, reply_id = store.begin_exchange(kept, "y" * 20_000)
        store.finish_reply(reply_id, status="complete", text="Paris again.")
        imported = import_chat(store, export)
        assert len(store.get_chat(imported).messages) == 6
        assert [m.content[:1] for m in store.get_chat(kept).messages] == list("WPxyP")
    with ChatStore.in_folder(disk.folder) as store:  # reopened: all there
        assert [c.title for c in store.list_chats()] == ["Imported", "Kept"]
    assert integrity(disk.folder) == [("ok",)]
    assert counts(disk.folder) == (2, 11)


@pytest.fixture(scope="module")
def long_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Replies 200 long tokens (5.4 KB) at a few hundred tokens/s."""
    path = tmp_path_factory.mktemp("long") / "long-scripted.gguf"
    write_scripted_model(path, LONG_SCRIPT, name="Long", n_embd=256, n_layer=1, n_ff=256)
    engine = Engine(n_ctx=1024, n_threads=1)
    engine.load(path)
    yield engine
    engine.close()


def test_a_reply_streaming_while_the_disk_fills_ends_failed_with_the_reason(
    disk: PageLimit | SmallFilesystem, long_engine: Engine
) -> None:
    with ChatStore.in_folder(disk.folder) as store:
        session = ChatSession(long_engine, params=SamplingParams(seed=1, max_tokens=256))
        log = ChatLog.start(store, session, save_every_s=0.0)  # saves after every chunk
        reply = log.ask("Tell me a long story")
        chunks = iter(reply)
        for _ in range(5):
            next(chunks)
        partial = store.get_chat(log.chat_id).messages[1]
        assert partial.status == "streaming" and partial.content
        assert reply.text.startswith(partial.content)
        disk.fill(store)
        # The reader gets the whole reply (saving the partial text is best effort), then
        # one clear error: the end of the reply could not be recorded.
        read = reply.text
        with pytest.raises(StorageError, match=FULL):
            for chunk in chunks:
                read += chunk
        assert read == reply.text == LONG_REPLY
        assert reply.status == "failed" and "is full" in reply.error
        # The database holds the question and the last partial text that fitted.
        assert integrity(disk.folder) == [("ok",)]
        question, answer = store.get_chat(log.chat_id).messages
        assert question.content == "Tell me a long story"
        assert answer.status == "streaming" and LONG_REPLY.startswith(answer.content)
        assert len(answer.content) < len(LONG_REPLY)
        # Room again: the conversation goes on and is stored (saving as usual: a save after
        # every chunk would fill the small filesystem's 512 KB with write-ahead log).
        disk.free(store)
        log.save_every_s = 2.0
        follow = log.ask("Again")
        assert "".join(follow) == LONG_REPLY
        assert follow.status == "complete"
        stored = store.get_chat(log.chat_id).messages
        assert [(m.role, m.status) for m in stored[2:]] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert stored[3].content == LONG_REPLY
    assert integrity(disk.folder) == [("ok",)]
