"""ChatStore on a real SQLite file: persistence across reopening, titles, the reply life cycle,
crash recovery of dead writers, odd text, threads, export/import, refusal of foreign files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llm import migrations
from llm.chat_export import chat_to_json, chat_to_markdown, import_chat
from llm.errors import ChatImportError, ChatNotFoundError, StorageError
from llm.storage import DB_FILE_NAME, ChatStore

FIGURES = {
    "prompt_tokens": 31,
    "completion_tokens": 7,
    "time_to_first_token_s": 0.12,
    "tokens_per_second": 48.5,
}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / DB_FILE_NAME


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection, to look at the file as any other SQLite tool would (with the SQL
    function the search index's triggers call, without which a tool cannot change a message)."""
    db = sqlite3.connect(path)
    migrations.register_functions(db)
    return db


def test_chats_survive_closing_and_reopening(db_path: Path) -> None:
    with ChatStore(db_path) as store:
        first = store.create_chat(system_prompt="Be brief.", model="a.gguf", chat_format="zephyr")
        store.add_message(first, "user", "What is the capital of France?")
        store.add_message(first, "assistant", "Paris.", model="a.gguf", figures=FIGURES)
        second = store.create_chat(settings={"temperature": 0.2, "max_tokens": 64})
        store.add_message(second, "user", "Hi")
    with ChatStore(db_path) as store:
        listed = store.list_chats()
        assert [c.id for c in listed] == [second, first]  # the most recently active first
        assert [c.message_count for c in listed] == [1, 2]
        chat = store.get_chat(first)
        assert chat.title == "What is the capital of France?"
        assert chat.system_prompt == "Be brief." and chat.chat_format == "zephyr"
        assert chat.model == "a.gguf"
        assert [(m.position, m.role, m.content, m.status) for m in chat.messages] == [
            (0, "user", "What is the capital of France?", "complete"),
            (1, "assistant", "Paris.", "complete"),
        ]
        reply = chat.messages[1]
        assert (reply.prompt_tokens, reply.completion_tokens) == (31, 7)
        assert reply.time_to_first_token_s == 0.12 and reply.tokens_per_second == 48.5
        assert store.get_chat(second).settings == {"temperature": 0.2, "max_tokens": 64}
        # activity moves a chat to the top
        store.add_message(first, "user", "And Italy?")
        assert [c.id for c in store.list_chats()] == [first, second]
    with raw(db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_titles_rename_and_delete(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = store.create_chat()
    assert store.get_chat(chat_id).title == ""  # untitled until the first message
    store.add_message(chat_id, "user", "  Plan a trip:\n\tthree days in Seoul, " + "then " * 30)
    title = store.get_chat(chat_id).title
    assert title.startswith("Plan a trip: three days in Seoul, then")
    assert title.endswith("…") and len(title) <= 60 and "\n" not in title
    store.add_message(chat_id, "user", "a later message does not rename it")
    assert store.get_chat(chat_id).title == title

    store.rename_chat(chat_id, "  Seoul\ntrip ")
    assert store.get_chat(chat_id).title == "Seoul trip"
    with pytest.raises(StorageError, match="cannot be empty"):
        store.rename_chat(chat_id, " \n ")
    with pytest.raises(StorageError, match="at most 200 characters"):
        store.rename_chat(chat_id, "x" * 201)
    assert store.get_chat(chat_id).title == "Seoul trip"  # refused: nothing changed

    titled = store.create_chat(title="My own title")
    store.add_message(titled, "user", "Hello")
    assert store.get_chat(titled).title == "My own title"

    store.delete_chat(chat_id)
    with pytest.raises(ChatNotFoundError, match=f"no chat with id {chat_id}"):
        store.get_chat(chat_id)
    for call in (
        lambda: store.rename_chat(chat_id, "x"),
        lambda: store.delete_chat(chat_id),
        lambda: store.add_message(chat_id, "user", "x"),
        lambda: store.start_reply(chat_id),
        lambda: chat_to_markdown(store.get_chat(chat_id)),
    ):
        with pytest.raises(ChatNotFoundError):
            call()
    store.close()
    with raw(db_path) as db:  # ON DELETE CASCADE removed its messages
        count = "SELECT count(*) FROM messages WHERE chat_id = ?"
        assert db.execute(count, (chat_id,)).fetchone()[0] == 0
        assert db.execute(count, (titled,)).fetchone()[0] == 1
    # ids of deleted chats are never reused
    with ChatStore(db_path) as store:
        assert store.create_chat() > titled


def test_bad_values_are_refused(db_path: Path) -> None:
    store = ChatStore(db_path)
    with pytest.raises(StorageError, match="unknown generation setting 'temprature'"):
        store.create_chat(settings={"temprature": 0.5})
    with pytest.raises(StorageError, match=r"temperature = 9\.0 is out of range"):
        store.create_chat(settings={"temperature": 9.0})
    with pytest.raises(StorageError, match="top_k = 'many' must be an integer"):
        store.create_chat(settings={"top_k": "many"})
    with pytest.raises(StorageError, match="chat format 'alpaca' must be one of auto"):
        store.create_chat(chat_format="alpaca")
    assert store.list_chats() == []
    chat_id = store.create_chat()
    with pytest.raises(StorageError, match="role 'system' must be one of user, assistant"):
        store.add_message(chat_id, "system", "x")
    with pytest.raises(StorageError, match="status 'done' must be one of"):
        store.add_message(chat_id, "assistant", "x", status="done")
    reply = store.start_reply(chat_id)
    with pytest.raises(StorageError, match="status 'streaming' must be one of complete"):
        store.finish_reply(reply, status="streaming", text="")
    assert [m.status for m in store.get_chat(chat_id).messages] == ["streaming"]


def test_reply_life_cycle_seen_from_another_connection(db_path: Path) -> None:
    writer = ChatStore(db_path)
    reader = ChatStore(db_path)  # another tab, or the command line
    chat_id = writer.create_chat()
    user_id, reply_id = writer.begin_exchange(chat_id, "Tell me about Paris", model="m.gguf")
    messages = reader.get_chat(chat_id).messages
    assert [(m.id, m.role, m.status, m.content) for m in messages] == [
        (user_id, "user", "complete", "Tell me about Paris"),
        (reply_id, "assistant", "streaming", ""),
    ]
    assert reader.get_chat(chat_id).model == "m.gguf"
    assert writer.update_reply(reply_id, "Paris is")
    assert reader.get_chat(chat_id).messages[1].content == "Paris is"
    # the reader opened while the writer (this process) streams: the reply is left alone
    assert reader.mark_interrupted_replies() == 0
    assert writer.finish_reply(
        reply_id, status="stopped", text="Paris is the", figures=FIGURES, format="zephyr"
    )
    reply = reader.get_chat(chat_id).messages[1]
    assert (reply.status, reply.content, reply.format, reply.completion_tokens) == (
        "stopped",
        "Paris is the",
        "zephyr",
        7,
    )
    assert not writer.update_reply(reply_id, "late")  # no longer streaming
    failed = writer.start_reply(chat_id)
    writer.finish_reply(failed, status="failed", text="", error="the model process stopped")
    last = reader.get_chat(chat_id).messages[-1]
    assert (last.status, last.error, last.prompt_tokens) == (
        "failed",
        "the model process stopped",
        None,
    )
    # a reply whose chat was deleted meanwhile (in another tab) finishes quietly
    orphan = writer.start_reply(chat_id)
    reader.delete_chat(chat_id)
    assert not writer.update_reply(orphan, "x")
    assert not writer.finish_reply(orphan, status="complete", text="x")


# A process that starts a reply and dies without finishing it.
_WRITER = """
import os, sys, time
from llm.storage import ChatStore
store = ChatStore(sys.argv[1])
reply = store.start_reply(int(sys.argv[2]))
store.update_reply(reply, "half a rep")
print(reply, flush=True)
if sys.argv[3] == "exit":
    os._exit(0)  # no cleanup, no finish_reply
time.sleep(60)
"""


def test_replies_of_dead_processes_become_interrupted(
    db_path: Path, project_env: dict[str, str]
) -> None:
    store = ChatStore(db_path)
    chat_id = store.create_chat()
    live = store.start_reply(chat_id)  # this process is alive: must be left alone
    exited = subprocess.run(
        [sys.executable, "-c", _WRITER, str(db_path), str(chat_id), "exit"],
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    exited_id = int(exited.stdout)
    # Killed and not yet reaped: a zombie still has a pid, but it writes nothing more.
    sleeper = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db_path), str(chat_id), "sleep"],
        env=project_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        zombie_id = int(sleeper.stdout.readline())
        with ChatStore(db_path) as other:  # opening while the sleeper lives: nothing marked
            assert [m.status for m in other.get_chat(chat_id).messages] == [
                "streaming",
                "interrupted",  # the process that exited
                "streaming",
            ]
        sleeper.kill()
        for _ in range(100):  # wait (bounded) until it is dead, without reaping it
            if Path(f"/proc/{sleeper.pid}/stat").read_text().split()[2] == "Z":
                break
            threading.Event().wait(0.05)
        with ChatStore(db_path) as reopened:
            messages = {m.id: m for m in reopened.get_chat(chat_id).messages}
    finally:
        sleeper.kill()
        sleeper.wait()
        sleeper.stdout.close()
    assert messages[live].status == "streaming"
    assert messages[exited_id].status == "interrupted"
    assert messages[zombie_id].status == "interrupted"
    assert messages[zombie_id].content == "half a rep"  # the partial text is kept


def test_null_bytes_and_invalid_unicode(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = store.create_chat(system_prompt="sys\x00tem \ud800")
    text = "nul\x00byte, lone \udc80 surrogate, 한국어, emoji 🎉, \x1b[31m"
    store.add_message(chat_id, "user", text)
    reply = store.start_reply(chat_id)
    store.update_reply(reply, "partial \ud83d")
    store.finish_reply(reply, status="complete", text="done \x00 \udfff", error="")
    chat = store.get_chat(chat_id)
    assert chat.messages[0].content == text.replace("\udc80", "\ufffd")
    assert chat.messages[1].content == "done \x00 \ufffd"
    assert chat.system_prompt == "sys\x00tem \ufffd"
    assert "\x00" not in chat.title and "\x1b" not in chat.title
    # Bytes that are not UTF-8, written by another tool, read as U+FFFD instead of failing.
    with raw(db_path) as db:
        db.execute("UPDATE messages SET content = CAST(X'4F4BFF' AS TEXT) WHERE id = ?", (reply,))
    assert store.get_chat(chat_id).messages[1].content == "OK\ufffd"
    markdown = chat_to_markdown(store.get_chat(chat_id))
    assert "OK\ufffd" in markdown
    assert "\x00" not in markdown  # replaced: tools see text, not binary
    json.loads(chat_to_json(store.get_chat(chat_id)))


def test_threads_sharing_one_store_lose_nothing(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = store.create_chat()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(50):
                store.add_message(chat_id, "user", f"t{n}-{i}")
                store.list_chats()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    messages = store.get_chat(chat_id).messages
    assert [m.position for m in messages] == list(range(200))
    assert {m.content for m in messages} == {f"t{n}-{i}" for n in range(4) for i in range(50)}


def _full_chat(store: ChatStore) -> int:
    chat_id = store.create_chat(
        system_prompt="You are a geography expert.",
        settings={"temperature": 0.3, "top_k": 20, "max_tokens": 128, "seed": 7},
        model="tinyllama.gguf",
        chat_format="zephyr",
    )
    store.add_message(chat_id, "user", "What is the capital of France?\n\n# not a heading")
    store.add_message(
        chat_id, "assistant", "Paris.", model="tinyllama.gguf", format="zephyr", figures=FIGURES
    )
    store.add_message(chat_id, "user", "서울은? \x00 🎉")
    reply = store.start_reply(chat_id, model="tinyllama.gguf", format="zephyr")
    untimed = {**FIGURES, "tokens_per_second": 0.0}  # a burst from a server: no rate
    store.finish_reply(reply, status="stopped", text="Seoul is", figures=untimed)
    store.add_message(chat_id, "user", "Again")
    failed = store.start_reply(chat_id)
    store.finish_reply(failed, status="failed", text="", error="the model process stopped")
    return chat_id


def test_export_markdown(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = _full_chat(store)
    text = chat_to_markdown(store.get_chat(chat_id))
    assert text.startswith("# What is the capital of France? # not a heading\n")
    assert "- Model: tinyllama.gguf (format zephyr)" in text
    assert "temperature 0.3" in text
    assert "## System prompt\n\nYou are a geography expert.\n" in text
    sections = text.split("\n## ")[2:]
    assert [s.split(" · ")[0] for s in sections] == [
        "User",
        "Assistant",
        "User",
        "Assistant",
        "User",
        "Assistant",
    ]
    assert "Paris.\n\n*prompt 31 tokens · first token 0.12 s · 7 tokens at 48.5 tokens/s*" in text
    assert (
        "Seoul is\n\n*Stopped before the end. · prompt 31 tokens · first token 0.12 s · 7 tokens*"
        in text
    )
    assert text.endswith("UTC\n\n*Failed: the model process stopped*\n")
    assert "서울은? \ufffd 🎉" in text


def test_export_json_and_import_round_trip(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = _full_chat(store)
    exported = chat_to_json(store.get_chat(chat_id))
    document = json.loads(exported)
    assert document["format"] == "localchat-chat" and document["version"] == 2
    copy_id = import_chat(store, exported.encode("utf-8"))
    assert copy_id != chat_id
    original, copy = store.get_chat(chat_id), store.get_chat(copy_id)
    assert copy.title == original.title and copy.system_prompt == original.system_prompt
    assert copy.settings == original.settings and copy.model == original.model
    assert copy.chat_format == original.chat_format and copy.created == original.created
    assert (copy.backend, original.backend) == ("local", "local")

    def comparable(chat: object) -> list[dict]:
        rows = [m.to_dict() for m in chat.messages]
        ids = ("id", "chat_id", "parent_id", "sibling_ids")  # the copy's own
        return [{k: v for k, v in r.items() if k not in ids} for r in rows]

    assert comparable(copy) == comparable(original)
    assert comparable(copy)[2]["content"] == "서울은? \x00 🎉"  # NUL survives JSON
    assert store.list_chats()[0].id == copy_id  # an import is new activity
    again = json.loads(chat_to_json(store.get_chat(copy_id)))
    assert again["chat"]["messages"] == document["chat"]["messages"]


def _export(**chat: object) -> str:
    body = {"title": "t", "messages": [{"role": "user", "content": "hi"}], **chat}
    return json.dumps({"format": "localchat-chat", "version": 1, "chat": body})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe{", "not UTF-8 text"),
        ("{", "not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ("[]", r'not a LocalChat chat export \(no "format": "localchat-chat"\)'),
        ('{"format": "localchat-chat", "version": 3, "chat": {}}', "from a newer LocalChat"),
        ('{"format": "localchat-chat", "version": "1", "chat": {}}', "version must be"),
        ('{"format": "localchat-chat", "version": 1}', '"chat" must be an object'),
        (_export(messages={}), "chat.messages must be a list"),
        (_export(messages=[{"role": "bot", "content": "x"}]), r"messages\[0\].role must be"),
        (_export(messages=[{"role": "user"}]), r"messages\[0\].content must be a string"),
        (
            _export(messages=[{"role": "user", "content": "x"}, {"role": "user", "content": 1}]),
            r"chat.messages\[1\].content must be a string",
        ),
        (
            _export(messages=[{"role": "assistant", "content": "x", "status": "done"}]),
            r"messages\[0\].status must be one of",
        ),
        (
            _export(messages=[{"role": "assistant", "content": "x", "completion_tokens": -1}]),
            r"messages\[0\].completion_tokens must be a number, at least 0",
        ),
        (
            _export(messages=[{"role": "user", "content": "x", "created": "yesterday"}]),
            "'yesterday' is not an ISO 8601 time",
        ),
        (_export(settings={"temprature": 1}), "chat: unknown generation setting 'temprature'"),
        (_export(settings={"top_p": 0}), "top_p = 0 is out of range"),
        (_export(settings=[]), "chat.settings must be an object"),
        (_export(chat_format="alpaca"), "chat format 'alpaca' must be one of"),
        (_export(backend="../gpu box"), "backend '../gpu box' must be 1 to 64 letters"),
        (_export(title=7), "chat.title must be a string"),
        (_export(title="x" * 300), "chat.title can have at most 200 characters"),
    ],
)
def test_bad_imports_are_refused_and_store_nothing(
    db_path: Path, data: str | bytes, message: str
) -> None:
    store = ChatStore(db_path)
    with pytest.raises(ChatImportError, match=message):
        import_chat(store, data)
    assert store.list_chats() == []


def test_a_chat_remembers_its_backend(db_path: Path) -> None:
    store = ChatStore(db_path)
    chat_id = store.create_chat(model="tinyllama.gguf")
    assert store.get_chat(chat_id).backend == "local"
    store.begin_exchange(chat_id, "Hi", model="qwen2.5-7b", format="server", backend="gpu-box")
    chat = store.get_chat(chat_id)
    assert (chat.backend, chat.model) == ("gpu-box", "qwen2.5-7b")
    assert store.list_chats()[0].backend == "gpu-box"
    assert "- Model: qwen2.5-7b on gpu-box" in chat_to_markdown(store.get_chat(chat_id))
    copy = store.get_chat(import_chat(store, chat_to_json(store.get_chat(chat_id))))
    assert (copy.backend, copy.model) == ("gpu-box", "qwen2.5-7b")
    with pytest.raises(StorageError, match="backend 'a b' must be"):
        store.begin_exchange(chat_id, "Again", model="m", backend="a b")
    assert len(store.get_chat(chat_id).messages) == 2  # the refused exchange stored nothing


def test_import_of_a_streaming_reply_and_untitled_chat(db_path: Path) -> None:
    data = json.dumps(
        {
            "format": "localchat-chat",
            "version": 1,
            "chat": {
                "messages": [
                    {"role": "user", "content": "Where is Busan?", "extra": "ignored"},
                    {"role": "assistant", "content": "In the so", "status": "streaming"},
                ]
            },
        }
    )
    store = ChatStore(db_path)
    chat = store.get_chat(import_chat(store, data))
    assert chat.title == "Where is Busan?" and chat.chat_format == "auto"
    assert [m.status for m in chat.messages] == ["complete", "interrupted"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_that_are_not_localchat_databases_are_refused_untouched(tmp_path: Path) -> None:
    text_file = tmp_path / "notes" / DB_FILE_NAME
    text_file.parent.mkdir()
    text_file.write_text("my notes, not a database\n" * 100)
    before = _digest(text_file)
    with pytest.raises(StorageError, match=r"cannot use the chat database .*not a database"):
        ChatStore(text_file)
    assert _digest(text_file) == before

    other = tmp_path / "other" / DB_FILE_NAME
    other.parent.mkdir()
    with raw(other) as db:
        db.execute("CREATE TABLE chats (id INTEGER PRIMARY KEY, body TEXT)")
    before = _digest(other)
    with pytest.raises(StorageError, match="holds another program's tables"):
        ChatStore(other)
    assert _digest(other) == before
    assert sorted(p.name for p in other.parent.iterdir()) == [DB_FILE_NAME]

    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    with pytest.raises(StorageError, match="cannot create the data folder"):
        ChatStore.in_folder(blocked / "data")
