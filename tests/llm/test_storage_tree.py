"""Messages as a tree in the chat database: a database written by LocalChat before branches
(schema version 4) becomes one branch per chat with everything kept; edits and regenerations
add siblings and never overwrite; the visible branch is stored and remembered at each fork;
deleting a branch; two connections (two tabs) writing to one chat both keep their branches;
pinned chats; JSON export and import of the whole tree."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from llm.chat_export import chat_to_json, chat_to_markdown, export_json, import_chat
from llm.errors import ChatImportError, ChatNotFoundError, MessageError, MessageNotFoundError
from llm.storage import DB_FILE_NAME, ChatStore

# Written by LocalChat at commit cc9bd11 (schema version 4) with fixtures/make_chats_v4.py.
V4_DATABASE = Path(__file__).parent / "fixtures" / "chats_v4.db"


def old_rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    """Every chat and message column that version 4 had, read with plain SQL."""
    with closing(sqlite3.connect(path)) as db:
        chats = db.execute(
            "SELECT id, title, created, updated, system_prompt, model, settings_json, "
            "chat_format, backend FROM chats ORDER BY id"
        ).fetchall()
        messages = db.execute(
            "SELECT id, chat_id, position, role, content, created, model, format, status, "
            "error, writer, prompt_tokens, completion_tokens, time_to_first_token_s, "
            "tokens_per_second FROM messages ORDER BY id"
        ).fetchall()
    return chats, messages


@pytest.fixture
def v4_copy(tmp_path: Path) -> Path:
    path = tmp_path / DB_FILE_NAME
    shutil.copyfile(V4_DATABASE, path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    with ChatStore(tmp_path / "chats.db") as store:
        yield store


def test_a_version_4_database_becomes_one_branch_per_chat_keeping_everything(
    v4_copy: Path,
) -> None:
    chats_before, messages_before = old_rows(v4_copy)
    assert len(messages_before) == 1210  # 4 + 4 + 2 + 0 + 1200
    with ChatStore(v4_copy) as store:
        assert store.schema_version >= 6
        assert old_rows(v4_copy) == (chats_before, messages_before)  # nothing changed
        by_chat: dict[int, list[tuple]] = {}
        for row in messages_before:
            by_chat.setdefault(row[1], []).append(row)
        for chat in chats_before:
            stored = store.get_chat(chat[0])
            old = by_chat.get(chat[0], [])
            # The visible branch is every message, in the old order, each the child of the
            # one before; no siblings anywhere.
            assert [m.id for m in stored.messages] == [row[0] for row in old]
            parents = [None] + [row[0] for row in old[:-1]]
            assert [m.parent_id for m in stored.messages] == parents[: len(old)]
            assert all(m.sibling_ids == (m.id,) for m in stored.messages)
            assert stored.current_leaf_id == (old[-1][0] if old else None)
            assert store.tree(chat[0]) == list(stored.messages)
            assert not stored.pinned
        first = store.get_chat(1).messages
        assert [(m.status, m.finish_reason, m.can_continue) for m in first[1::2]] == [
            ("complete", "", False),
            ("stopped", "", True),  # stopped by the user: continuable, though older
        ]
        assert first[1].figures.completion_tokens == 12 and first[3].tokens_per_second == 41.5
        korean = store.get_chat(2).messages
        assert [m.status for m in korean] == ["complete", "failed", "complete", "complete"]
        assert korean[1].error == "the server answered 500"
        assert store.get_chat(3).messages[1].status == "interrupted"
        # The old history is searchable at once (the migration indexed it).
        assert [h.chat_id for h in store.search_chats("한강")] == [2]
        assert [h.message_id for h in store.search_chats("haiku")] == [9]
        # Writing continues the single branch.
        long_chat = store.get_chat(5)
        _user_id, reply_id = store.begin_exchange(5, "question 600")
        assert store.get_chat(5).messages[-2].parent_id == long_chat.messages[-1].id
        assert store.get_chat(5).current_leaf_id == reply_id


def test_an_edit_adds_a_sibling_and_switching_remembers_each_fork(store: ChatStore) -> None:
    chat = store.create_chat()
    q1, a1 = store.begin_exchange(chat, "first question")
    store.finish_reply(a1, status="complete", text="first answer", finish_reason="stop")
    q2, a2 = store.begin_exchange(chat, "second question")
    store.finish_reply(a2, status="complete", text="second answer")
    q3, a3 = store.begin_exchange(chat, "third question")
    # Edit the second question: a sibling below the first answer, nothing overwritten.
    q2b, a2b = store.begin_exchange(chat, "second, edited", parent_id=a1)
    shown = store.get_chat(chat)
    assert [m.id for m in shown.messages] == [q1, a1, q2b, a2b]
    assert shown.messages[2].sibling_ids == (q2, q2b) and shown.current_leaf_id == a2b
    assert len(store.tree(chat)) == 8
    # Regenerate the first answer: a third branch, below the first question.
    a1c = store.start_reply(chat, parent_id=q1)
    assert [m.id for m in store.get_chat(chat).messages] == [q1, a1c]
    # Back to the first answer: below it, the branch last shown there (the edited one).
    assert [m.id for m in store.switch_to(chat, a1).messages] == [q1, a1, q2b, a2b]
    # Back to the original second question: its branch down to the end.
    assert [m.id for m in store.switch_to(chat, q2).messages] == [q1, a1, q2, a2, q3, a3]
    # Stored: another connection (a restart, another tab) opens the same branch.
    with ChatStore(store.path) as other:
        assert other.get_chat(chat).current_leaf_id == a3
    # ... and the fork below a1 now remembers q2.
    store.switch_to(chat, a1c)
    assert store.switch_to(chat, a1).current_leaf_id == a3
    with pytest.raises(MessageNotFoundError, match="no message with id 999"):
        store.switch_to(chat, 999)
    other_chat = store.create_chat()
    with pytest.raises(MessageNotFoundError):
        store.switch_to(other_chat, q1)  # a message of another chat
    with pytest.raises(MessageNotFoundError):
        store.begin_exchange(other_chat, "x", parent_id=a1)
    # Ids from a page are input from a stranger: True is not message 1, "5" is not 5.
    for bad in (True, "5", 1.0, None):
        with pytest.raises(MessageNotFoundError, match="must be a whole number"):
            store.switch_to(chat, bad)
        with pytest.raises(MessageNotFoundError, match="must be a whole number"):
            store.delete_branch(chat, bad)
    with pytest.raises(MessageNotFoundError, match="must be a whole number"):
        store.begin_exchange(chat, "x", parent_id=True)
    assert len(store.tree(chat)) == 9


def test_delete_branch_removes_everything_below_and_shows_a_sibling(store: ChatStore) -> None:
    chat = store.create_chat()
    q1, a1 = store.begin_exchange(chat, "question")
    _q2, _a2 = store.begin_exchange(chat, "follow-up")
    a1b = store.start_reply(chat, parent_id=q1)
    a1c = store.start_reply(chat, parent_id=q1)
    store.switch_to(chat, a1)
    # The visible branch goes: the sibling before it is shown (a1 has none before: after).
    shown = store.delete_branch(chat, a1)
    assert [m.id for m in shown.messages] == [q1, a1b]
    assert {m.id for m in store.tree(chat)} == {q1, a1b, a1c}  # q2 and a2 went with a1
    assert store.search_chats("follow-up") == []  # and out of the index
    # A branch that is not shown goes without moving the visible one.
    assert [m.id for m in store.delete_branch(chat, a1c).messages] == [q1, a1b]
    # The last child: the branch ends at the parent.
    assert [m.id for m in store.delete_branch(chat, a1b).messages] == [q1]
    # The first message: the chat is empty, and kept.
    emptied = store.delete_branch(chat, q1)
    assert emptied.messages == () and emptied.current_leaf_id is None
    q, a = store.begin_exchange(chat, "again")
    assert [m.id for m in store.get_chat(chat).messages] == [q, a]


def test_deleting_a_long_branch_and_a_long_chat(store: ChatStore) -> None:
    chat = store.create_chat(
        messages=[{"role": ("user", "assistant")[i % 2], "content": f"m{i}"} for i in range(3000)]
    )
    tree = store.tree(chat)
    assert [m.parent_id for m in tree[1:4]] == [tree[0].id, tree[1].id, tree[2].id]
    shown = store.delete_branch(chat, tree[10].id)  # 2,990 messages, one below the other
    assert len(shown.messages) == 10 and len(store.tree(chat)) == 10
    store.delete_chat(chat)
    with closing(sqlite3.connect(store.path)) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM message_terms").fetchone() == (0,)


def test_two_connections_editing_one_chat_both_keep_their_branches(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE_NAME
    with ChatStore(path) as tab_a, ChatStore(path) as tab_b:
        chat = tab_a.create_chat()
        q1, a1 = tab_a.begin_exchange(chat, "question")
        tab_a.finish_reply(a1, status="complete", text="answer")
        # Both tabs edit the same question at once, each from what it shows.
        qa, ra = tab_a.begin_exchange(chat, "edited in tab A", parent_id=None)
        qb, rb = tab_b.begin_exchange(chat, "edited in tab B", parent_id=None)
        tab_b.finish_reply(rb, status="complete", text="reply B")
        tab_a.finish_reply(ra, status="complete", text="reply A")
        # Each tab continues its own branch.
        qa2, ra2 = tab_a.begin_exchange(chat, "more in A", parent_id=ra)
        qb2, rb2 = tab_b.begin_exchange(chat, "more in B", parent_id=rb)
        tree = {m.id: m for m in tab_a.tree(chat)}
        assert len(tree) == 10
        assert tree[qa].sibling_ids == (q1, qa, qb)
        assert [tree[i].content for i in (qa, ra, qa2)] == [
            "edited in tab A",
            "reply A",
            "more in A",
        ]
        assert [tree[i].parent_id for i in (qb2, rb2)] == [rb, qb2]
        # Each tab reopens its own branch by switching to it; the chat shows the last written.
        assert tab_a.get_chat(chat).current_leaf_id == rb2
        assert [m.id for m in tab_a.switch_to(chat, ra2).messages] == [qa, ra, qa2, ra2]
        assert [m.id for m in tab_b.switch_to(chat, rb2).messages] == [qb, rb, qb2, rb2]


def test_finish_reason_is_stored_and_says_what_can_continue(store: ChatStore) -> None:
    chat = store.create_chat()
    rows = {}
    for status, reason in (
        ("complete", "stop"),
        ("complete", "length"),
        ("stopped", "cancelled"),
        ("failed", ""),
    ):
        _, reply = store.begin_exchange(chat, f"{status} {reason}")
        store.finish_reply(reply, status=status, text="x", finish_reason=reason)
        rows[(status, reason)] = reply
    messages = {m.id: m for m in store.tree(chat)}
    assert {key: messages[i].can_continue for key, i in rows.items()} == {
        ("complete", "stop"): False,
        ("complete", "length"): True,
        ("stopped", "cancelled"): True,
        ("failed", ""): False,
    }
    assert not messages[min(messages)].can_continue  # a user message
    assert store.resume_reply(rows[("complete", "length")]).content == "x"
    assert store.tree(chat)[3].status == "streaming"
    with pytest.raises(MessageError, match="only a reply that was stopped or cut"):
        store.resume_reply(rows[("complete", "stop")])


def test_pinned_chats_come_first(store: ChatStore) -> None:
    old = store.create_chat(title="Old")
    middle = store.create_chat(title="Middle")
    new = store.create_chat(title="New")
    assert [c.id for c in store.list_chats()] == [new, middle, old]
    store.set_pinned(old, True)
    store.set_pinned(middle, True)
    summaries = store.list_chats()
    assert [(c.id, c.pinned) for c in summaries] == [
        (middle, True),
        (old, True),
        (new, False),
    ]
    assert store.get_chat(old).pinned
    store.set_pinned(middle, False)
    assert [c.id for c in store.list_chats()] == [old, new, middle]
    with pytest.raises(ChatNotFoundError):
        store.set_pinned(999, True)


def tree_shape(store: ChatStore, chat_id: int) -> tuple[list[tuple], list[str]]:
    """The tree as (content, parent's content, status, finish) rows, and the visible branch."""
    tree = store.tree(chat_id)
    content = {m.id: m.content for m in tree}
    rows = [(m.content, content.get(m.parent_id), m.status, m.finish_reason) for m in tree]
    return rows, [m.content for m in store.get_chat(chat_id).messages]


def test_json_export_keeps_the_whole_tree_and_imports_back_to_it(store: ChatStore) -> None:
    chat = store.create_chat(system_prompt="Be brief.")
    q1, a1 = store.begin_exchange(chat, "Capital of France?")
    store.finish_reply(a1, status="complete", text="Paris.", finish_reason="stop")
    _q2, a2 = store.begin_exchange(chat, "And Korea?")
    store.finish_reply(a2, status="complete", text="Seoul", finish_reason="length")
    a1b = store.start_reply(chat, parent_id=q1)
    store.finish_reply(a1b, status="stopped", text="It is", finish_reason="cancelled")
    _q1b, a1c = store.begin_exchange(chat, "Capital of Italy?", parent_id=None)
    store.finish_reply(a1c, status="complete", text="Rome.")
    store.switch_to(chat, a1b)
    store.set_pinned(chat, True)
    exported = export_json(store, chat)
    document = json.loads(exported)
    assert document["version"] == 2 and len(document["chat"]["messages"]) == 7
    copy = import_chat(store, exported)
    assert tree_shape(store, copy) == tree_shape(store, chat)
    assert tree_shape(store, copy)[1] == ["Capital of France?", "It is"]
    assert store.get_chat(copy).pinned
    # Exported again: the same document, apart from the time of export.
    again = json.loads(export_json(store, copy))
    assert again["chat"]["messages"] == document["chat"]["messages"]
    # Markdown is the visible branch.
    markdown = chat_to_markdown(store.get_chat(chat))
    assert "It is" in markdown and "Paris." not in markdown and "Rome." not in markdown
    # Without the tree, JSON holds the visible branch.
    branch = json.loads(chat_to_json(store.get_chat(chat)))["chat"]["messages"]
    assert [m["content"] for m in branch] == ["Capital of France?", "It is"]


def test_a_version_1_export_imports_as_one_branch(store: ChatStore) -> None:
    old = {
        "format": "localchat-chat",
        "version": 1,
        "chat": {
            "title": "Old export",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello", "status": "stopped"},
                {"role": "user", "content": "more"},
            ],
        },
    }
    chat = import_chat(store, json.dumps(old))
    rows, shown = tree_shape(store, chat)
    assert rows == [
        ("hi", None, "complete", ""),
        ("hello", "hi", "stopped", ""),
        ("more", "hello", "complete", ""),
    ]
    assert shown == ["hi", "hello", "more"]


def _tree_export(messages: list[dict], **chat: object) -> str:
    body = {"title": "t", "messages": messages, **chat}
    return json.dumps({"format": "localchat-chat", "version": 2, "chat": body})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _tree_export([{"id": 0, "parent": 1, "role": "user", "content": "a"}]),
            r"messages\[0\].parent must be null or the id of a message before it",
        ),
        (  # a cycle: each names the other as parent
            _tree_export(
                [
                    {"id": 0, "parent": 1, "role": "user", "content": "a"},
                    {"id": 1, "parent": 0, "role": "assistant", "content": "b"},
                ]
            ),
            r"messages\[0\].parent must be null",
        ),
        (
            _tree_export(
                [
                    {"id": 5, "parent": None, "role": "user", "content": "a"},
                    {"id": 5, "parent": None, "role": "user", "content": "b"},
                ]
            ),
            r"messages\[1\].id 5 is used twice",
        ),
        (
            _tree_export(
                [
                    {"id": 0, "parent": None, "role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ]
            ),
            r"messages\[1\].id must be an integer",
        ),
        (
            _tree_export([{"id": True, "role": "user", "content": "a"}]),
            r"messages\[0\].id must be an integer",
        ),
        (
            _tree_export([{"id": 0, "role": "user", "content": "a"}], current_leaf=3),
            "current_leaf must be the id of one of its messages",
        ),
        (
            _tree_export([{"id": 0, "role": "user", "content": "a", "finish_reason": "eos"}]),
            r"messages\[0\].finish_reason must be one of",
        ),
        (_tree_export([], pinned="yes"), "chat.pinned must be true or false"),
        (
            _tree_export([{"role": "user", "content": "a"}] * 100_001),
            "chat.messages can hold at most 100,000 messages",
        ),
    ],
)
def test_bad_trees_are_refused_and_store_nothing(store: ChatStore, data: str, message: str) -> None:
    with pytest.raises(ChatImportError, match=message):
        import_chat(store, data)
    assert store.list_chats() == []


def test_a_deep_imported_tree_is_stored(store: ChatStore) -> None:
    # Depth is bounded by the number of messages (parents come first): 20,000 deep is fine.
    messages = [
        {
            "id": i,
            "parent": i - 1 if i else None,
            "role": ("user", "assistant")[i % 2],
            "content": f"m{i}",
        }
        for i in range(20_000)
    ]
    chat = import_chat(store, _tree_export(messages))
    shown = store.get_chat(chat).messages
    assert len(shown) == 20_000 and shown[-1].content == "m19999"
