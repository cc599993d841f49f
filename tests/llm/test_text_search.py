"""The Hangul-aware FTS5 helper (llm/text_search.py) in real SQLite: Korean words are found
inside longer runs (서울 in 서울은), two-syllable words work (한강), and what a user types is
never read as FTS5 syntax."""

from __future__ import annotations

import sqlite3

import pytest

from llm.text_search import (
    fts_query,
    indexed_form,
    matched_terms,
    query_terms,
    snippet_pieces,
)

TEXTS = [
    "서울은 한국의 수도이다.",
    "한강공원에서 자전거를 탔다",
    "The Han river flows through Seoul",
    "강남역 근처 카페",
    "LocalChat의 문서 검색",
]


@pytest.fixture
def db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5 (terms, tokenize = 'unicode61')")
    for i, text in enumerate(TEXTS):
        db.execute("INSERT INTO t (rowid, terms) VALUES (?, ?)", (i, indexed_form(text)))
    return db


def found(db: sqlite3.Connection, words: str, match: str = "any") -> list[int]:
    query = fts_query(words, match=match)
    if not query:  # no word at all: callers do not run the query
        return []
    rows = db.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t)", (query,))
    return [row[0] for row in rows]


def test_plain_unicode61_misses_what_the_indexed_form_finds() -> None:
    plain = sqlite3.connect(":memory:")
    plain.execute("CREATE VIRTUAL TABLE t USING fts5 (terms)")
    plain.execute("INSERT INTO t (rowid, terms) VALUES (0, ?)", (TEXTS[0],))
    assert plain.execute("SELECT rowid FROM t WHERE t MATCH '서울'").fetchall() == []


def test_korean_words_inside_longer_runs(db: sqlite3.Connection) -> None:
    assert found(db, "서울") == [0]  # 서울 in 서울은
    assert found(db, "한강") == [1]  # two syllables, inside 한강공원에서
    assert found(db, "한강공원") == [1]  # a phrase of its pieces
    assert found(db, "수도") == [0]
    assert found(db, "LocalChat") == [4] and found(db, "문서") == [4]  # mixed scripts apart
    assert sorted(found(db, "서울 카페")) == [0, 3]
    assert found(db, "서울 카페", match="all") == []


def test_one_syllable_is_a_prefix(db: sqlite3.Connection) -> None:
    assert sorted(found(db, "강")) == [1, 3]  # 강남역, and 강공 inside 한강공원


def test_other_words_and_stopwords(db: sqlite3.Connection) -> None:
    assert found(db, "What is the river?") == [2]  # only "river" is asked
    assert query_terms("the of") == ['"the"', '"of"']  # nothing else: stopwords are kept
    assert fts_query("!!! ...") == ""


@pytest.mark.parametrize("typed", ['"; DROP TABLE t; --', "NEAR(a b)", "a* OR b", "col:x", '"'])
def test_typed_syntax_is_only_words(db: sqlite3.Connection, typed: str) -> None:
    found(db, typed)  # no sqlite3.OperationalError: every word is quoted


def test_matched_terms_share() -> None:
    assert matched_terms("서울", TEXTS[0]) == 1.0
    assert matched_terms("한강 카페", TEXTS[1]) == 0.5
    assert matched_terms("Seoul river", TEXTS[2]) == 1.0
    assert matched_terms("Paris", TEXTS[2]) == 0.0


def test_at_most_max_terms_words() -> None:
    assert fts_query("a1 b2 c3 d4", match="all", max_terms=2) == '"a1" AND "b2"'
    assert len(query_terms(" ".join(f"w{i}" for i in range(50)), max_terms=8)) == 8


def test_snippet_pieces_mark_the_words_in_the_original_text() -> None:
    assert snippet_pieces("서울", "오늘 서울은 맑고\n서울 사람들은") == (
        ("오늘 ", False),
        ("서울", True),
        ("은 맑고 ", False),
        ("서울", True),
        (" 사람들은", False),
    )
    # Whole words for other scripts, any case; "rivers" is not "river".
    assert snippet_pieces("river", "River, rivers and a river.") == (
        ("River", True),
        (", rivers and a ", False),
        ("river", True),
        (".", False),
    )
    assert snippet_pieces("absent", "some text") == (("some text", False),)
    long = "x " * 200 + "needle " + "y " * 200
    pieces = snippet_pieces("needle", long, width=40)
    text = "".join(piece for piece, _ in pieces)
    assert text.startswith("…") and text.endswith("…") and len(text) < 70
    assert ("needle", True) in pieces
