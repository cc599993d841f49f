"""What the chat page's conversation component is sent (pages/conversation.py), from stored
messages: the context used and its notice, each message's versions and actions, a branch
other than the chat's, search hits as plain text pieces."""

from __future__ import annotations

import dataclasses

from llm.storage import ChatHit, ChatStore
from pages import conversation
from pages.i18n import labels

T = labels("en")


def _exchange(store: ChatStore, chat_id: int, question: str, *, prompt: int, reply: int) -> None:
    store.add_message(chat_id, "user", question)
    message_id = store.start_reply(chat_id, model="m.gguf")
    store.finish_reply(
        message_id,
        status="complete",
        text="ok",
        figures={
            "prompt_tokens": prompt,
            "completion_tokens": reply,
            "time_to_first_token_s": 0.1,
            "tokens_per_second": 10.0,
        },
    )


def test_the_context_used_comes_from_the_last_reply_and_warns_before_trimming(
    tmp_path,
) -> None:
    with ChatStore.in_folder(tmp_path) as store:
        chat_id = store.create_chat(title="Counting")
        assert conversation.context_used(T, (), 4096, 512)["text"] == ""  # nothing yet
        _exchange(store, chat_id, "first", prompt=1000, reply=234)
        messages = store.get_chat(chat_id).messages
        used = conversation.context_used(T, messages, 4096, 512)
        assert used == {"used": 1234, "limit": 4096, "text": "1,234 / 4,096 tokens", "notice": ""}
        # The next prompt is this conversation plus a message; past n_ctx - max_tokens,
        # trim_history leaves out the oldest exchanges.
        tight = conversation.context_used(T, messages, 4096, 4096 - 1234)
        assert tight["notice"] == T["context_will_drop"]
        roomy = conversation.context_used(
            T, messages, 4096, 4096 - 1234 - conversation.NEXT_MESSAGE_TOKENS - 1
        )
        assert roomy["notice"] == ""
        # A server that does not say its context length: the tokens alone.
        assert conversation.context_used(T, messages, 0, 512)["text"] == "1,234 tokens"


def test_messages_carry_their_versions_and_a_branch_can_be_shown(tmp_path) -> None:
    with ChatStore.in_folder(tmp_path) as store:
        chat_id = store.create_chat(title="Versions")
        _exchange(store, chat_id, "question", prompt=10, reply=2)
        first = store.get_chat(chat_id)
        reply = first.messages[-1]
        second = store.start_reply(chat_id, model="m.gguf", parent_id=reply.parent_id)
        store.finish_reply(second, status="stopped", text="par", figures=None)
        chat = store.get_chat(chat_id)
        view = conversation.conversation_json(
            T,
            chat,
            live_id=None,
            live_key="",
            busy=False,
            n_ctx=1024,
            max_tokens=256,
            continue_refusal="",
        )
        last = view["messages"][-1]
        assert (last["id"], last["siblings"], last["index"]) == (second, [reply.id, second], 1)
        assert last["can_continue"] and "stopped" in last["footer"]
        refused = conversation.conversation_json(
            T,
            chat,
            live_id=None,
            live_key="",
            busy=False,
            n_ctx=1024,
            max_tokens=256,
            continue_refusal="not here",
        )["messages"][-1]
        assert not refused["can_continue"] and refused["continue_refusal"] == "not here"
        # Another tab still shows the first version.
        other = conversation.with_branch(chat, store.tree(chat_id), reply.id)
        assert [m.id for m in other.messages] == [m.id for m in first.messages]
        gone = conversation.with_branch(chat, store.tree(chat_id), 987654)
        assert gone is chat


def test_search_hits_are_plain_text_pieces() -> None:
    hit = ChatHit(
        chat_id=3,
        title="",
        message_id=9,
        snippet=(("<b>", False), ("서울", True), ("은", False)),
        updated="2026-12-05T07:00:00",
    )
    assert conversation.hit_json(T, hit) == {
        "chat_id": 3,
        "message_id": 9,
        "title": T["untitled"],
        "snippet": [["<b>", False], ["서울", True], ["은", False]],
        "updated": "2026-12-05T07:00:00",
    }
    assert dataclasses.asdict(hit)["snippet"][0] == ("<b>", False)
