"""Keyword search in SQLite FTS5 that finds Korean words: the indexed form and the query.

Why: FTS5's `unicode61` tokenizer splits Hangul on spaces only, so `서울` is not found in
`서울은` (a particle is glued to the noun); `trigram` needs three characters per term, so the
two-syllable `한강` finds nothing; and Python's sqlite3 cannot register a tokenizer of its own.
So the text is indexed in a derived form: every run of Hangul becomes its overlapping
two-syllable pieces (`서울은` -> `서울 울은`), other text stays as it is for `unicode61`. A query
is turned into pieces the same way: `서울` is the piece `서울`; `한강공원` is the phrase
`"한강 강공 공원"`; one syllable is a prefix match (`강*`). Words of other scripts are quoted, so
nothing a user types is read as FTS5 syntax.

Use: store `indexed_form(text)` in an FTS5 column (`tokenize = "unicode61 remove_diacritics 2"`)
and search it with `MATCH fts_query(words)`. Shared by document search and chat search.
"""

from __future__ import annotations

import itertools
import re

_SPACES = re.compile(r"\s+")
# Hangul syllables, Jamo and compatibility Jamo.
_HANGUL_RUN = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
# What unicode61 keeps as a token: letters, digits (any script), and Hangul runs apart.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Words too common to say anything about a passage; left out of `any`-mode queries so a
# question's "what is the" does not match every passage.
STOPWORDS = frozenset(
    """a about an and are as at be by can could did do does for from had has have how i if in
    into is it its me my of on or our should so that the their them then there these they this
    to us was we were what when where which who whom why will with would you your tell please
    say said""".split()  # noqa: SIM905 - a word list reads better as text
)


def hangul_pieces(run: str) -> list[str]:
    """The overlapping two-syllable pieces of a Hangul run (a single syllable stays whole)."""
    if len(run) < 2:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def indexed_form(text: str) -> str:
    """`text` as it should be stored in the FTS5 column: Hangul runs as their pieces."""
    return _HANGUL_RUN.sub(lambda m: " " + " ".join(hangul_pieces(m.group())) + " ", text)


def _quoted(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def query_terms(
    text: str, *, drop_stopwords: bool = True, max_terms: int | None = None
) -> list[str]:
    """The words of a user's query as FTS5 expressions, one per word, without repeats (at
    most `max_terms`, the first ones).

    A Hangul word becomes its pieces (a phrase when there are several, a prefix when it is
    one syllable); other words are quoted, lower-cased, stopwords left out (unless that would
    leave nothing)."""
    terms: list[str] = []
    kept_stop: list[str] = []
    for word in _WORD.findall(text):
        for part in _split_scripts(word):
            if _HANGUL_RUN.fullmatch(part):
                pieces = hangul_pieces(part)
                term = (
                    f"{_quoted(part)}*"
                    if len(part) == 1
                    else _quoted(" ".join(pieces))  # a phrase: the pieces in order
                )
            else:
                lower = part.lower()
                term = _quoted(lower)
                if drop_stopwords and lower in STOPWORDS:
                    kept_stop.append(term)
                    continue
            terms.append(term)
    return list(dict.fromkeys(terms or kept_stop))[:max_terms]


def _split_scripts(word: str) -> list[str]:
    # "LocalChat의" -> "LocalChat", "의": Hangul and other letters are indexed apart.
    parts: list[str] = []
    position = 0
    for match in _HANGUL_RUN.finditer(word):
        if match.start() > position:
            parts.append(word[position : match.start()])
        parts.append(match.group())
        position = match.end()
    if position < len(word):
        parts.append(word[position:])
    return parts


def fts_query(text: str, *, match: str = "any", max_terms: int | None = None) -> str:
    """An FTS5 MATCH expression for what a user typed: passages with `any` of its words
    (ranked by bm25: the more and rarer words a passage holds, the higher) or with `all` of
    them (at most `max_terms` words). "" when the text has no word at all (do not run the
    query then)."""
    if match not in ("any", "all"):
        raise ValueError(f"match must be 'any' or 'all', not {match!r}")
    terms = query_terms(text, drop_stopwords=match == "any", max_terms=max_terms)
    if not terms:
        return ""
    return (" OR " if match == "any" else " AND ").join(terms)


def matched_terms(query: str, text: str) -> float:
    """The share of the query's words (stopwords left out) that `text` holds, 0.0 to 1.0:
    a measure of keyword evidence that, unlike bm25, means the same in every collection."""
    terms = query_terms(query)
    if not terms:
        return 0.0
    haystack = " " + " ".join(_WORD.findall(indexed_form(text).lower())) + " "
    found = 0
    for term in terms:
        words = term.rstrip("*").strip('"').replace('""', '"').split()
        if term.endswith("*"):
            found += any(f" {w}" in haystack for w in words)
        else:
            found += f" {' '.join(words)} " in haystack
    return found / len(terms)


def _word_patterns(query: str) -> list[re.Pattern[str]]:
    patterns = []
    for word in _WORD.findall(query):
        for part in _split_scripts(word):
            if _HANGUL_RUN.fullmatch(part):  # inside a word: 서울 in 서울은
                patterns.append(re.compile(re.escape(part)))
            else:  # a whole word, as unicode61 matches it
                patterns.append(re.compile(rf"(?<![^\W_]){re.escape(part)}(?![^\W_])", re.I))
    return patterns


def snippet_pieces(query: str, text: str, *, width: int = 160) -> tuple[tuple[str, bool], ...]:
    """About `width` characters of `text` around the first word of `query` it holds, as
    plain-text pieces: (text, True) for the query's words, (text, False) between them.
    White space is made single spaces; "…" marks text left out. Without a match: the start."""
    spans: list[tuple[int, int]] = []
    for pattern in _word_patterns(query[:1000]):
        spans += [m.span() for m in itertools.islice(pattern.finditer(text), 200)]
    spans.sort()
    first = spans[0][0] if spans else 0
    start = max(0, first - width // 3)
    if start:
        space = text.rfind(" ", max(0, start - 20), start)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.find(" ", end, end + 20)
        end = space if space >= 0 else end
    pieces: list[tuple[str, bool]] = []
    position = start
    for left, right in spans:
        left, right = max(left, position), min(right, end)
        if left >= right:
            continue
        pieces += [(text[position:left], False), (text[left:right], True)]
        position = right
    pieces.append((text[position:end], False))
    if start:
        pieces.insert(0, ("…", False))
    if end < len(text):
        pieces.append(("…", False))
    out: list[tuple[str, bool]] = []
    for piece, hit in pieces:
        piece = _SPACES.sub(" ", piece)
        if not piece:
            continue
        if out and out[-1][1] == hit:
            out[-1] = (out[-1][0] + piece, hit)
        else:
            out.append((piece, hit))
    return tuple(out)
