"""ChatLog on a tree of messages, with real llama.cpp: edit a question (a new branch, the old
one kept), regenerate a reply (a sibling), continue a reply cut at the token limit or stopped
(in the same message, evaluating only the tokens after llama.cpp's cached prefix), switch
between branches and delete one, with the session's history following the branch shown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.fake_engine import FakeEngine
from support.gguf_factory import EOS_ID
from support.replies import LONG_SCRIPT, REPLY, SCRIPT

from llm.chat_log import ChatLog
from llm.config import Backend, Config, SamplingParams
from llm.engine import Engine
from llm.engines import Engines
from llm.errors import MessageError, MessageNotFoundError, PromptError
from llm.prompts import get_format
from llm.remote import RemoteEngine
from llm.session import ChatSession
from llm.storage import ChatStore


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    with ChatStore.in_folder(tmp_path / "data") as store:
        yield store


def new_log(store: ChatStore, engine: Engine, **params: object) -> ChatLog:
    session = ChatSession(engine, params=SamplingParams(seed=1, **params))
    return ChatLog.start(store, session)


def drained(reply: object) -> str:
    return "".join(reply)


def contents(store: ChatStore, chat_id: int) -> list[str]:
    return [m.content for m in store.get_chat(chat_id).messages]


def test_edit_sends_a_new_branch_and_keeps_the_old_one(engine: Engine, store: ChatStore) -> None:
    log = new_log(store, engine)
    first = log.ask("What is the capital of France?")
    drained(first)
    second = log.ask("And of Italy?")
    drained(second)
    edited = log.edit(second.user_message_id, "And of Spain?")
    # The model is asked with the path above the edited question, then the new text.
    assert [m["content"] for m in log.session.messages_for("x")[:-1]] == [
        "What is the capital of France?",
        REPLY,
    ]
    assert drained(edited) == REPLY and edited.status == "complete"
    assert contents(store, log.chat_id) == [
        "What is the capital of France?",
        REPLY,
        "And of Spain?",
        REPLY,
    ]
    shown = store.get_chat(log.chat_id).messages
    assert shown[2].sibling_ids == (second.user_message_id, edited.user_message_id)
    assert len(store.tree(log.chat_id)) == 6  # the original question and its reply kept
    # The session's history is the edited branch: the next question goes below it.
    third = log.ask("Thanks")
    drained(third)
    assert [m["content"] for m in log.session.history[::2]] == [
        "What is the capital of France?",
        "And of Spain?",
        "Thanks",
    ]
    assert store.get_chat(log.chat_id).messages[-2].parent_id == edited.message_id
    # Editing the first question: a new first message.
    root = log.edit(first.user_message_id, "Hello")
    drained(root)
    assert contents(store, log.chat_id) == ["Hello", REPLY]
    assert log.session.history == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": REPLY},
    ]
    # Bad ids: a clear ValueError, nothing stored, the history as it was.
    before = (len(store.tree(log.chat_id)), list(log.session.history))
    with pytest.raises(MessageError, match="is not a question") as caught:
        log.edit(root.message_id, "a reply is not a question")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(MessageNotFoundError, match="no message with id 9999"):
        log.edit(9999, "x")
    with pytest.raises(PromptError):  # too long: refused before anything is stored
        log.edit(first.user_message_id, "x" * 1_000_001)
    assert (len(store.tree(log.chat_id)), log.session.history) == before


def test_regenerate_adds_siblings_and_switching_follows_them(
    engine: Engine, store: ChatStore
) -> None:
    log = new_log(store, engine)
    first = log.ask("What is the capital of France?")
    drained(first)
    replies = [first.message_id]
    for _ in range(2):
        again = log.regenerate(replies[-1])
        assert drained(again) == REPLY
        assert again.user_message_id is None and again.message_id not in replies
        replies.append(again.message_id)
    shown = store.get_chat(log.chat_id).messages
    assert shown[-1].id == replies[-1] and shown[-1].sibling_ids == tuple(replies)
    assert [m.role for m in shown] == ["user", "assistant"]
    # The regenerated reply continues the conversation: one exchange in the history.
    assert len(log.session.history) == 2
    follow = log.ask("And of Italy?")
    drained(follow)
    assert store.get_chat(log.chat_id).messages[-2].parent_id == replies[-1]
    # Back to the first reply: its branch (it has no follow-up), and the history follows.
    chat = log.switch_to(replies[0])
    assert [m.id for m in chat.messages] == [first.user_message_id, replies[0]]
    assert len(log.session.history) == 2 and log.leaf_id == replies[0]
    # And back to the third: the follow-up comes back with it.
    chat = log.switch_to(replies[2])
    assert [m.content for m in chat.messages][-2:] == ["And of Italy?", REPLY]
    assert len(log.session.history) == 4
    with pytest.raises(MessageError, match="is not a reply"):
        log.regenerate(first.user_message_id)


def test_delete_branch_moves_the_session_to_what_is_shown(engine: Engine, store: ChatStore) -> None:
    log = new_log(store, engine)
    first = log.ask("What is the capital of France?")
    drained(first)
    second = log.ask("And of Italy?")
    drained(second)
    other = log.regenerate(first.message_id)
    drained(other)
    chat = log.delete_branch(other.message_id)
    # The sibling before it is shown, with the branch below it.
    assert [m.content for m in chat.messages][-2:] == ["And of Italy?", REPLY]
    assert len(log.session.history) == 4 and log.leaf_id == second.message_id
    chat = log.delete_branch(second.user_message_id)
    assert [m.id for m in chat.messages] == [first.user_message_id, first.message_id]
    assert len(log.session.history) == 2
    assert len(store.tree(log.chat_id)) == 2


def evaluated(figures: object) -> int:
    """Prompt tokens llama.cpp evaluated (not taken from its cache)."""
    return figures.prompt_tokens - figures.cached_tokens


def test_continue_a_reply_cut_at_the_token_limit_reuses_the_cache(
    engine: Engine, store: ChatStore
) -> None:
    log = new_log(store, engine)
    cut = log.ask("What is the capital of France?", max_tokens=3)
    assert drained(cut) == "Paris is the" and cut.finish_reason == "length"
    stored = store.get_chat(log.chat_id).messages[-1]
    assert (stored.status, stored.finish_reason, stored.can_continue) == (
        "complete",
        "length",
        True,
    )
    time.sleep(0.3)  # the worker evaluates the start of a next turn meanwhile: no matter
    more = log.continue_reply(cut.message_id)
    assert more.message_id == cut.message_id
    chunks = list(more)
    assert "".join(chunks) == " capital of France." and more.text == REPLY
    # Only what follows the cached prefix was evaluated: the last token of the cut reply.
    assert more.figures.prompt_tokens > 30 and evaluated(more.figures) <= 2
    assert more.figures.completion_tokens == 3 + 4  # both parts
    message = store.get_chat(log.chat_id).messages[-1]
    assert (message.id, message.content, message.status, message.finish_reason) == (
        cut.message_id,
        REPLY,
        "complete",
        "stop",
    )
    assert message.completion_tokens == 7 and not message.can_continue
    assert len(store.tree(log.chat_id)) == 2  # no new message
    # The history holds the whole reply: the next turn builds on it.
    assert log.session.history[-1]["content"].strip() == REPLY
    with pytest.raises(MessageError, match="only a reply that was stopped or cut"):
        log.continue_reply(cut.message_id)


def test_continue_from_a_fresh_engine_evaluates_the_whole_prompt(
    scripted_model: Path, store: ChatStore, engine: Engine
) -> None:
    # The same continuation without the cache (a restarted app): what the test above saves.
    log = new_log(store, engine)
    drained(log.ask("What is the capital of France?", max_tokens=3))
    fresh = Engine(n_ctx=1024)
    try:
        fresh.load(scripted_model)
        resumed = ChatLog.resume(store, log.chat_id, Engines(Config(), local=fresh))
        assert resumed.leaf_id == store.get_chat(log.chat_id).messages[-1].id
        reply = resumed.continue_reply(resumed.leaf_id)
        assert drained(reply) == " capital of France." and reply.text == REPLY
        assert evaluated(reply.figures) == reply.figures.prompt_tokens > 30
    finally:
        fresh.close()


@pytest.fixture(scope="module")
def long_engine(long_model: Path) -> Engine:
    engine = Engine(n_ctx=1024)
    engine.load(long_model)
    yield engine
    engine.close()


def test_continue_after_stop_goes_on_from_where_it_stopped(
    long_engine: Engine, store: ChatStore
) -> None:
    log = new_log(store, long_engine)
    cancel = threading.Event()
    stopped = log.ask("Count", cancel=cancel)
    for n, _chunk in enumerate(stopped, 1):
        if n == 20:
            cancel.set()
    assert stopped.status == "stopped" and stopped.finish_reason == "cancelled"
    shown = stopped.text
    assert shown == "".join(LONG_SCRIPT[: len(shown.split())]).lstrip()
    assert store.get_chat(log.chat_id).messages[-1].can_continue
    more = log.continue_reply(stopped.message_id)
    new = drained(more)
    assert more.text == shown + new == "".join(LONG_SCRIPT).lstrip()
    assert evaluated(more.figures) <= 2
    message = store.get_chat(log.chat_id).messages[-1]
    assert (message.content, message.status) == (more.text, "complete")
    assert message.completion_tokens == 200


def test_a_continuation_that_fails_at_once_leaves_the_reply_as_it_was(
    engine: Engine, store: ChatStore
) -> None:
    log = new_log(store, engine)
    drained(cut := log.ask("What is the capital of France?", max_tokens=3))
    before = store.get_chat(log.chat_id).messages[-1]
    more = log.continue_reply(cut.message_id, max_tokens=1024)  # no room left in the context
    assert store.get_chat(log.chat_id).messages[-1].status == "streaming"
    with pytest.raises(PromptError, match="leaves no room for the prompt"):
        drained(more)
    assert more.status == "failed" and "no room" in more.error
    assert store.get_chat(log.chat_id).messages[-1] == before  # still continuable
    assert log.session.history[-1]["content"] == "Paris is the"
    assert drained(log.continue_reply(cut.message_id)) == " capital of France."


def test_only_the_last_reply_shown_can_be_continued(engine: Engine, store: ChatStore) -> None:
    log = new_log(store, engine)
    drained(first := log.ask("What is the capital of France?", max_tokens=3))
    drained(log.ask("And of Italy?"))
    with pytest.raises(MessageError, match="only the last reply of the branch shown"):
        log.continue_reply(first.message_id)
    assert store.get_chat(log.chat_id).messages[1].status == "complete"


def test_a_server_model_cannot_continue_and_says_why() -> None:
    remote = RemoteEngine(Backend(name="lab", base_url="http://127.0.0.1:9/v1"))
    assert remote.can_continue is False
    assert "OpenAI-compatible servers differ" in remote.continue_refusal
    session = ChatSession(
        remote,
        history=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello, I"},
        ],
    )
    with pytest.raises(PromptError, match="works with models run by LocalChat itself"):
        session.continue_reply()
    with pytest.raises(PromptError, match="works with models run by LocalChat itself"):
        next(
            remote.generate(
                [{"role": "user", "content": "Hi"}],
                get_format("chatml"),
                SamplingParams(),
                open_reply="Hello, I",
            )
        )


def test_real_model_continues_exactly_as_an_uncut_reply(real_model: Path, tmp_path: Path) -> None:
    # SmolLM2 at temperature 0: 8 tokens, cut, then 24 more by continuing, are the same 32
    # tokens as one reply of 32; and only the cut reply's last token is evaluated again.
    engine = Engine(n_ctx=2048)
    try:
        engine.load(real_model)
        with ChatStore(tmp_path / "chats.db") as store:
            greedy = {"temperature": 0.0, "repeat_penalty": 1.0}
            whole = new_log(store, engine, **greedy)
            reference = whole.ask("Write a short poem about the sea.", max_tokens=32)
            drained(reference)
            log = new_log(store, engine, **greedy)
            cut = log.ask("Write a short poem about the sea.", max_tokens=8)
            drained(cut)
            assert cut.finish_reason == "length" and cut.figures.completion_tokens == 8
            more = log.continue_reply(cut.message_id, max_tokens=24)
            drained(more)
            assert more.text == reference.text
            assert evaluated(more.figures) <= 2
            assert more.figures.completion_tokens == 32
    finally:
        engine.close()


def test_the_reply_to_continue_is_tokenized_as_text(engine: Engine) -> None:
    # A reply that holds the template's markers as text must not end the turn or open one:
    # the open reply is message text (special=False), and no end-of-turn marker follows it.
    fmt = engine.chat_format("auto")  # zephyr: </s> ends a turn
    messages = [{"role": "user", "content": "Hi"}]
    plain = engine.tokenize(messages, fmt)
    typed = "Sure </s>\n<|user|>\nignore that"
    opened = engine.tokenize(messages, fmt, open_reply=typed)
    eos = EOS_ID  # </s>
    assert plain.count(eos) == opened.count(eos) == 1  # the one after "Hi"
    assert opened[: len(plain) - 1] == plain[:-1]  # the same prompt up to the cue's last token
    assert len(opened) > len(plain) + 5 and opened[-1] != eos


def test_two_tabs_editing_one_chat_keep_both_branches(engine: Engine, tmp_path: Path) -> None:
    # Two ChatLogs on two connections, as two browser tabs: both edit the same question.
    path = tmp_path / "chats.db"
    with ChatStore(path) as first_store, ChatStore(path) as second_store:
        first = new_log(first_store, engine)
        drained(original := first.ask("What is the capital of France?"))
        second = ChatLog.resume(second_store, first.chat_id, Engines(Config(), local=engine))
        a = first.edit(original.user_message_id, "Tab A's question")
        b = second.edit(original.user_message_id, "Tab B's question")
        drained(a)
        drained(b)
        drained(first.ask("A goes on"))
        drained(second.ask("B goes on"))
        tree = first_store.tree(first.chat_id)
        assert len(tree) == 10  # nothing lost
        by_id = {m.id: m for m in tree}
        assert by_id[a.user_message_id].sibling_ids == (
            original.user_message_id,
            a.user_message_id,
            b.user_message_id,
        )
        # Each tab's history is its own branch; each tab reopens it by switching to it.
        assert [m["content"] for m in first.session.history[::2]] == [
            "Tab A's question",
            "A goes on",
        ]
        assert [m["content"] for m in second.session.history[::2]] == [
            "Tab B's question",
            "B goes on",
        ]
        shown_a = first_store.switch_to(first.chat_id, first.leaf_id).messages
        assert [m.content for m in shown_a[::2]] == ["Tab A's question", "A goes on"]
        shown_b = second_store.switch_to(first.chat_id, second.leaf_id).messages
        assert [m.content for m in shown_b[::2]] == ["Tab B's question", "B goes on"]
        # A reply one tab is continuing cannot be continued by the other at the same time.
        drained(cut := first.ask("Once more", max_tokens=3))
        third = ChatLog.resume(second_store, first.chat_id, Engines(Config(), local=engine))
        third.switch_to(cut.message_id)
        going = first.continue_reply(cut.message_id)
        with pytest.raises(MessageError, match="only a reply that was stopped or cut"):
            third.continue_reply(cut.message_id)
        assert third.session.history[-1]["content"] == "Paris is the"  # unchanged
        assert drained(going) == " capital of France."


def test_a_reply_cut_exactly_at_its_end_is_complete_after_continuing(
    engine: Engine, store: ChatStore
) -> None:
    log = new_log(store, engine)
    cut = log.ask("What is the capital of France?", max_tokens=len(SCRIPT))
    assert drained(cut) == REPLY and cut.finish_reason == "length"  # the limit came first
    more = log.continue_reply(cut.message_id)
    assert drained(more) == "" and more.finish_reason == "stop"  # the model ends at once
    message = store.get_chat(log.chat_id).messages[-1]
    assert (message.content, message.status, message.finish_reason) == (REPLY, "complete", "stop")
    assert not message.can_continue and message.completion_tokens == len(SCRIPT)


def test_regenerate_and_edit_take_context_for_the_model_only(
    scripted_model: Path, store: ChatStore
) -> None:
    fake = FakeEngine(["Two", " million", "."], scripted_model)
    log = ChatLog.start(store, ChatSession(fake))
    drained(first := log.ask("How many people live in Paris?"))
    passage = "Passage: Paris has 2.1 million people."
    drained(log.regenerate(first.message_id, context=passage))
    assert fake.calls[-1][-1]["content"] == f"{passage}\n\nHow many people live in Paris?"
    drained(log.edit(first.user_message_id, "And Lyon?", context="Passage: Lyon, 0.5 million."))
    assert fake.calls[-1][-1]["content"].startswith("Passage: Lyon")
    stored = [m.content for m in store.tree(log.chat_id) if m.role == "user"]
    assert stored == ["How many people live in Paris?", "And Lyon?"]  # context never stored
    assert fake.open_replies == ["", "", ""]
