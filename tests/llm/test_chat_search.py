"""Chat search (`ChatStore.search_chats`) over real SQLite FTS5: Korean words (two syllables,
a word with a particle), English words, titles and messages of any chat and any branch; the
hit names the message so its branch can be opened; the index follows every write and delete
(triggers); whatever a user types is words, never FTS5 syntax."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from llm.storage import SEARCH_MAX_TERMS, ChatStore


@pytest.fixture
def store(tmp_path: Path) -> ChatStore:
    with ChatStore(tmp_path / "chats.db") as store:
        yield store


def chat_with(store: ChatStore, *exchanges: tuple[str, str], title: str = "") -> list[int]:
    """A chat of (question, reply) exchanges; returns its id and its messages' ids."""
    chat = store.create_chat(title=title)
    ids = [chat]
    for question, answer in exchanges:
        q, a = store.begin_exchange(chat, question)
        store.finish_reply(a, status="complete", text=answer)
        ids += [q, a]
    return ids


def hit_ids(store: ChatStore, words: str) -> list[tuple[int, int | None]]:
    return [(h.chat_id, h.message_id) for h in store.search_chats(words)]


def test_korean_and_english_words_are_found_in_any_chat(store: ChatStore) -> None:
    river, q1, a1 = chat_with(store, ("한강 공원에 가 볼까요?", "네, 자전거를 빌릴 수 있어요."))
    city, _q2, a2 = chat_with(store, ("Tell me about Seoul", "서울은 대한민국의 수도입니다."))
    poem, q3, a3 = chat_with(store, ("Write a haiku about rivers", "Water finds its way"))
    store.create_chat()  # the chat open now, empty: the others are found all the same
    assert hit_ids(store, "한강") == [(river, q1)]  # two syllables
    assert hit_ids(store, "서울") == [(city, a2)]  # inside 서울은 (a particle)
    assert hit_ids(store, "haiku") == [(poem, q3)]
    assert hit_ids(store, "WATER") == [(poem, a3)]  # case does not matter
    assert hit_ids(store, "자전거") == [(river, a1)]
    assert hit_ids(store, "부산") == [] and hit_ids(store, "") == []
    hit = store.search_chats("서울")[0]
    assert hit.title == "Tell me about Seoul" and hit.updated
    assert hit.snippet == (("서울", True), ("은 대한민국의 수도입니다.", False))


def test_all_words_first_then_any(store: ChatStore) -> None:
    both, q1, _ = chat_with(store, ("rivers and mountains of Korea", "Many."))
    one, q2, _ = chat_with(store, ("rivers of France", "The Seine."))
    assert hit_ids(store, "rivers mountains") == [(both, q1)]  # all the words
    assert hit_ids(store, "mountains deserts") == [(both, q1)]  # none has both: any
    assert sorted(hit_ids(store, "rivers")) == [(both, q1), (one, q2)]


def test_titles_match_and_come_first(store: ChatStore) -> None:
    named, _, _ = chat_with(store, ("hello", "hi"), title="Trip to Jeju")
    mentioned, q, _ = chat_with(store, ("Is Jeju warm in May?", "Yes."))
    assert hit_ids(store, "jeju") == [(named, None), (mentioned, q)]
    assert store.search_chats("jeju")[0].snippet == (("Trip to ", False), ("Jeju", True))
    store.rename_chat(named, "Trip to Busan")  # the index follows the title
    assert hit_ids(store, "jeju") == [(mentioned, q)]
    assert hit_ids(store, "busan") == [(named, None)]


def test_a_hit_on_another_branch_opens_that_branch(store: ChatStore) -> None:
    chat, q1, a1 = chat_with(store, ("What should I cook?", "Pasta."))
    other = store.start_reply(chat, parent_id=q1)
    store.finish_reply(other, status="complete", text="Bibimbap with gochujang.")
    store.switch_to(chat, a1)  # the branch shown does not hold the word
    hit = store.search_chats("bibimbap")[0]
    assert (hit.chat_id, hit.message_id) == (chat, other)
    shown = store.switch_to(hit.chat_id, hit.message_id)
    assert [m.content for m in shown.messages] == [
        "What should I cook?",
        "Bibimbap with gochujang.",
    ]


def test_the_index_follows_streaming_edits_and_deletes(store: ChatStore) -> None:
    chat = store.create_chat()
    _q, a = store.begin_exchange(chat, "Plan a trip")
    store.update_reply(a, "Visit Gyeongju first")  # saved while streaming
    assert hit_ids(store, "gyeongju") == [(chat, a)]
    store.finish_reply(a, status="complete", text="Visit Busan first")
    assert hit_ids(store, "gyeongju") == [] and hit_ids(store, "busan") == [(chat, a)]
    store.delete_branch(chat, a)
    assert hit_ids(store, "busan") == []
    store.delete_chat(chat)
    assert hit_ids(store, "plan") == []
    with closing(sqlite3.connect(store.path)) as db:  # nothing left behind in the index
        assert db.execute("SELECT count(*) FROM message_terms").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM chat_title_terms").fetchone() == (0,)


@pytest.mark.parametrize(
    "typed",
    [
        '"',
        'rivers"',
        "AND(",
        "rivers AND(",
        "NOT rivers",
        "rivers OR",
        "col:rivers",
        "*",
        "rivers*",
        "^rivers",
        "NEAR(rivers mountains)",
        "{rivers}",
        "'",
        "-rivers",
        "\x00",
        "rivers \ud800",
    ],
)
def test_fts5_syntax_typed_by_a_user_is_taken_as_words(store: ChatStore, typed: str) -> None:
    chat, q, a = chat_with(store, ("rivers and mountains", "and valleys"))
    hits = hit_ids(store, typed)  # never an error
    assert hits in ([], [(chat, q)], [(chat, a)])  # "AND(" is the word "and"
    if "rivers" in typed:
        assert hits == [(chat, q)]


def test_long_queries_are_bounded(store: ChatStore) -> None:
    chat, q, _ = chat_with(store, ("w0 w1 w2 w3 w4 w5 w6 w7 zebra", "ok"))
    words = " ".join(f"w{i}" for i in range(SEARCH_MAX_TERMS)) + " zebra"
    # Only the first SEARCH_MAX_TERMS words count: "zebra" is beyond them, so "all" matches.
    assert hit_ids(store, words) == [(chat, q)]
    assert hit_ids(store, "w0 " * 10_000 + "absent") == [(chat, q)]  # cut at 200 chars
    many = " ".join(f"word{i}" for i in range(100_000))
    assert hit_ids(store, many) == []


def test_results_are_limited(store: ChatStore) -> None:
    for i in range(30):
        chat_with(store, (f"note {i} about kimchi", "ok"))
    assert len(store.search_chats("kimchi")) == 20
    assert len(store.search_chats("kimchi", limit=5)) == 5
    assert len(store.search_chats("kimchi", limit=10_000)) == 30


def test_snippets_are_plain_text_around_the_match(store: ChatStore) -> None:
    long_text = "Intro words. " * 40 + "The <b>Han</b> river runs through Seoul. " + "More. " * 40
    chat_with(store, ("tell me", long_text))
    pieces = store.search_chats("river")[0].snippet
    text = "".join(piece for piece, _ in pieces)
    assert text.startswith("…") and text.endswith("…") and len(text) < 200
    assert [piece for piece, hit in pieces if hit] == ["river"]
    assert "<b>Han</b>" in text  # plain text: the page escapes it
    assert "\n" not in text
