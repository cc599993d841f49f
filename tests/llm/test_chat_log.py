"""ChatLog with real llama.cpp: the user message is committed before generation, the partial
reply is saved while streaming, the end (complete / stopped / failed) is recorded with figures,
and a stored chat continues with its history, settings and system prompt."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from support.replies import LONG_SCRIPT, REPLY

from llm.chat_log import ChatLog, history_from_messages
from llm.config import Config, SamplingParams
from llm.engine import Engine
from llm.engines import Engines
from llm.errors import EngineError, PromptError
from llm.session import ChatSession
from llm.storage import ChatStore, StoredMessage

LONG_REPLY = "".join(LONG_SCRIPT).lstrip()  # the leading space of the first token is dropped


@pytest.fixture(scope="module")
def long_engine(long_model: Path) -> Engine:
    """Replies LONG_SCRIPT (200 tokens) at a few hundred tokens/s: long enough to act
    mid-reply."""
    engine = Engine(n_ctx=1024)
    engine.load(long_model)
    yield engine
    engine.close()


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    with ChatStore.in_folder(tmp_path / "data") as store:
        yield store


def session(engine: Engine, **kwargs: object) -> ChatSession:
    return ChatSession(engine, chat_format="auto", params=SamplingParams(seed=1), **kwargs)


def test_user_message_is_committed_before_generation(engine: Engine, store: ChatStore) -> None:
    log = ChatLog.start(store, session(engine, system_prompt="Be brief."))
    reply = log.ask("What is the capital of France?")
    with ChatStore(store.path) as other:  # what another tab or a restart would see now
        chat = other.get_chat(log.chat_id)
        assert [(m.role, m.status, m.content) for m in chat.messages] == [
            ("user", "complete", "What is the capital of France?"),
            ("assistant", "streaming", ""),
        ]
        assert chat.title == "What is the capital of France?"
        assert chat.model == "tinyllama-scripted.gguf" and chat.system_prompt == "Be brief."
    assert "".join(reply) == REPLY
    answer = store.get_chat(log.chat_id).messages[1]
    assert (answer.status, answer.content, answer.format, answer.model) == (
        "complete",
        REPLY,
        "zephyr",
        "tinyllama-scripted.gguf",
    )
    assert answer.completion_tokens == reply.figures.completion_tokens == len(REPLY.split()) + 1
    assert answer.prompt_tokens == reply.figures.prompt_tokens > 0
    assert answer.tokens_per_second > 0 and answer.time_to_first_token_s > 0
    assert reply.status == "complete" and reply.message_id == answer.id


def test_partial_reply_is_saved_while_streaming(long_engine: Engine, store: ChatStore) -> None:
    log = ChatLog.start(store, session(long_engine), save_every_s=0.05)
    reply = log.ask("Go")
    seen = ""
    saved: list[str] = []
    # closing(): leaving the block is the reader going away (also if an assert fails here)
    with ChatStore(store.path) as other, closing(iter(reply)) as chunks:
        for n, chunk in enumerate(chunks):
            seen += chunk
            if n in (20, 40):
                time.sleep(0.06)  # the next step saves what came so far
                before = seen
                seen += next(chunks)
                message = other.get_chat(log.chat_id).messages[1]  # what a restart would find
                assert message.status == "streaming"
                assert message.content == before
                saved.append(message.content)
            if n == 45:
                break
    assert len(saved) == 2 and LONG_REPLY.startswith(saved[1])
    assert saved[1].startswith(saved[0]) and len(saved[0]) < len(saved[1])
    final = store.get_chat(log.chat_id).messages[1]  # generation ended, the reply kept
    assert (final.status, final.content) == ("stopped", seen) and seen.startswith(saved[1])


def test_stop_and_abandoned_replies_are_kept_as_stopped(
    long_engine: Engine, store: ChatStore
) -> None:
    log = ChatLog.start(store, session(long_engine))
    cancel = threading.Event()
    reply = log.ask("Go", cancel=cancel)
    for n, _ in enumerate(reply):
        if n == 10:
            cancel.set()  # the Stop button
    stopped = store.get_chat(log.chat_id).messages[-1]
    assert reply.status == "stopped" and reply.finish_reason == "cancelled"
    assert (stopped.status, stopped.content) == ("stopped", reply.text)
    assert LONG_REPLY.startswith(stopped.content) and len(stopped.content) < len(LONG_REPLY)
    assert stopped.completion_tokens is not None  # figures arrived with the end

    second = log.ask("Again")
    for n, _ in enumerate(second):  # the reader goes away (a closed tab): also a stop
        if n == 5:
            break
    second_iter_closed = store.get_chat(log.chat_id).messages[-1]
    assert second_iter_closed.status == "stopped"
    assert second_iter_closed.content == second.text and second.text
    # both partial replies joined the history, as they do in ChatSession
    # (the history keeps the text as generated, with the leading space the display drops)
    history = [m["content"].lstrip() for m in log.session.history]
    assert history[1::2] == [reply.text, second.text]


def test_engine_failure_is_recorded_as_failed(long_engine: Engine, store: ChatStore) -> None:
    log = ChatLog.start(store, session(long_engine))
    reply = log.ask("Go")
    with pytest.raises(EngineError, match="the model process stopped"):
        for n, _ in enumerate(reply):
            if n == 5:
                os.kill(long_engine.worker_pid, signal.SIGKILL)
    user, answer = store.get_chat(log.chat_id).messages
    assert user.status == "complete" and user.content == "Go"
    assert answer.status == "failed" and "the model process stopped" in answer.error
    assert LONG_REPLY.startswith(answer.content)
    assert reply.status == "failed"


def test_a_message_the_model_cannot_take_stores_nothing(engine: Engine, store: ChatStore) -> None:
    log = ChatLog.start(store, session(engine))
    assert "".join(log.ask("What is the capital of France?")) == REPLY
    before, history = store.get_chat(log.chat_id), list(log.session.history)
    # Too long for the context: refused by the model process, then taken back out.
    refused = log.ask("capital? " * 12_000)
    with pytest.raises(PromptError, match=r"too long: .* needs \d+ tokens.* room for \d+"):
        list(refused)
    assert (refused.refused, refused.chat_deleted, refused.status) == (True, False, "failed")
    assert store.get_chat(log.chat_id).messages == before.messages
    assert log.session.history == history
    # A reply limit as large as the context leaves no room for any prompt: refused the same way.
    no_room = log.ask("Hi", max_tokens=1024)
    with pytest.raises(PromptError, match=r"max_tokens 1024 leaves no room .* context of 1024"):
        list(no_room)
    assert no_room.refused and store.get_chat(log.chat_id).messages == before.messages
    assert "".join(log.ask("Hi")) == REPLY  # the model process carries on
    before, history = store.get_chat(log.chat_id), list(log.session.history)
    # Over a million characters: refused before anything is stored or tokenized.
    with pytest.raises(PromptError, match=r"it has 1,000,001 characters.* at most 1,000,000"):
        log.ask("x" * 1_000_001)
    assert store.get_chat(log.chat_id).messages == before.messages
    # A new chat whose first message is refused is not kept at all.
    other = ChatLog.start(store, session(engine))
    first = other.ask("capital? " * 12_000)
    with pytest.raises(PromptError):
        list(first)
    assert first.chat_deleted
    assert [c.id for c in store.list_chats()] == [log.chat_id]


def test_history_from_stored_messages() -> None:
    def msg(role: str, content: str, status: str = "complete") -> StoredMessage:
        return StoredMessage(0, 1, 0, role, content, "", status=status)

    messages = [
        msg("user", "q1"),
        msg("assistant", "a1"),
        msg("user", "q2"),
        msg("assistant", "", "failed"),  # failed before writing: left out
        msg("user", "q3"),
        msg("assistant", "par", "interrupted"),  # what was written is kept
        msg("user", "q4"),  # no reply at all (crash before it started): left out
        msg("user", "q5"),
        msg("assistant", "", "complete"),  # an empty but finished reply is kept
        msg("user", "q6"),
        msg("assistant", "", "stopped"),
    ]
    assert history_from_messages(messages) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "par"},
        {"role": "user", "content": "q5"},
        {"role": "assistant", "content": ""},
    ]


def test_stored_chat_continues_with_its_history_and_settings(
    engine: Engine, store: ChatStore
) -> None:
    first = ChatLog.start(store, session(engine, system_prompt="Be brief."))
    fresh = first.ask("What is the capital of France?")
    assert "".join(fresh) == REPLY
    first.session.params = first.session.params.replace(temperature=0.1, max_tokens=64)
    assert "".join(first.ask("And Italy?")) == REPLY
    stored = store.get_chat(first.chat_id)
    assert stored.settings["temperature"] == 0.1 and stored.settings["max_tokens"] == 64

    # later, in another process or page: the same chat from the database alone
    config = Config().replace(system_prompt="Not this one")
    resumed = ChatLog.resume(store, first.chat_id, Engines(config), engine=engine)
    assert resumed.session.system_prompt == "Be brief."
    assert resumed.session.params.temperature == 0.1 and resumed.session.params.max_tokens == 64
    assert resumed.session.history == first.session.history
    assert resumed.chat == stored
    third = resumed.ask("And Spain?")
    assert "".join(third) == REPLY
    # the prompt carried both earlier exchanges
    assert third.figures.prompt_tokens > fresh.figures.prompt_tokens + 2 * len(REPLY.split())
    contents = [m.content for m in store.get_chat(first.chat_id).messages]
    assert contents == [
        "What is the capital of France?",
        REPLY,
        "And Italy?",
        REPLY,
        "And Spain?",
        REPLY,
    ]
