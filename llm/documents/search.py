"""Hybrid search over collections: keywords (SQLite FTS5, bm25) and meaning (embedding
similarity, numpy), fused by reciprocal rank fusion.

Scale designed for: up to about 100,000 passages in the collections searched at once (1,000+
files). Vectors are plain float32 rows in SQLite (this Python's SQLite cannot load vector
extensions), read once per collection into a numpy matrix and kept until the collection
changes (its `revision`); a query is one matrix product: 20,000 x 256 takes about 2 ms, and the
matrix 20 MB. Far beyond that an approximate index would be needed.

Relevance: fusion ranks, it does not say whether anything answers the question. A passage is
`relevant` when it holds at least half of the query's words (stopwords aside) or its
similarity reaches the embedder's threshold, measured on bench/ (`MIN_SIMILARITY`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..text_search import fts_query, matched_terms
from .embedders import Embedder
from .errors import DocumentsError
from .store import Collection, DocumentStore

CANDIDATES = 50  # from each of the two lists, before fusion
RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.; the usual choice)
MIN_KEYWORD_SHARE = 0.5
# Cosine similarity from which a passage counts as relevant by meaning alone. WordLlama's was
# measured on bench/ (answers vs distractors); other embedders' scales differ, so theirs is a
# cautious default.
MIN_SIMILARITY = {"wordllama": 0.55}
DEFAULT_MIN_SIMILARITY = 0.8
MODES = ("hybrid", "keyword", "vector")
MAX_QUERY_CHARS = 2_000


@dataclass(frozen=True)
class Passage:
    """A passage found by a search, with where it comes from and why it ranked."""

    collection: str
    source: str  # the file's path
    page: int | None  # PDF page, from 1
    section: str  # the heading it sits under ("" when none)
    text: str
    score: float  # fused rank score: higher is better, comparable within one search only
    similarity: float  # cosine with the query (0 when the passage has no vector)
    keyword: float  # share of the query's words it holds
    relevant: bool
    chunk_id: int

    @property
    def file_name(self) -> str:
        return Path(self.source).name

    @property
    def where(self) -> str:
        """'page 3', 'section "Budget"' or ''."""
        if self.page is not None:
            return f"page {self.page}"
        return f'section "{self.section}"' if self.section else ""

    def label(self) -> str:
        """File name and place, as a citation shows it: 'report.pdf, page 3'."""
        return ", ".join(filter(None, [self.file_name, self.where]))

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON (and the page)."""
        return {**asdict(self), "file_name": self.file_name}


class Searcher:
    """Searches a store; keeps each collection's vectors in memory until it changes."""

    def __init__(self, store: DocumentStore, embedder_for: Callable[[str], Embedder]) -> None:
        self.store = store
        self.embedder_for = embedder_for
        self._lock = threading.Lock()
        self._vectors: dict[int, tuple[int, np.ndarray, np.ndarray, dict[int, int]]] = {}

    def _matrix(self, collection: Collection) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
        """(chunk ids, unit vectors, row of each chunk id) of a collection, cached."""
        with self._lock:
            cached = self._vectors.get(collection.id)
            if cached is None or cached[0] != collection.revision:
                ids, matrix = self.store.vectors(collection.id)
                rows = {chunk_id: row for row, chunk_id in enumerate(ids.tolist())}
                cached = (collection.revision, ids, matrix, rows)
                self._vectors[collection.id] = cached
            return cached[1], cached[2], cached[3]

    def search(
        self, names: Sequence[str], query: str, *, k: int = 5, mode: str = "hybrid"
    ) -> list[Passage]:
        """The `k` best passages of the named collections for `query`, best first."""
        if mode not in MODES:
            raise DocumentsError(f"search mode {mode!r} must be one of {', '.join(MODES)}")
        if not isinstance(query, str) or not query.strip():
            raise DocumentsError("the search needs some words")
        if len(query) > MAX_QUERY_CHARS:
            query = query[:MAX_QUERY_CHARS]  # a question pasted with a document: its start
        collections = [self.store.collection(name) for name in dict.fromkeys(names)]
        if not collections:
            return []
        similarity = self._similarities(collections, query)
        ranked: list[list[int]] = []
        if mode in ("hybrid", "keyword"):
            match = fts_query(query)
            hits = self.store.keyword_hits([c.id for c in collections], match, CANDIDATES)
            ranked.append([chunk_id for chunk_id, _ in hits] if match else [])
        if mode in ("hybrid", "vector"):
            ranked.append(similarity.best(CANDIDATES))
        fused: dict[int, float] = {}
        for ranking in ranked:
            for rank, chunk_id in enumerate(ranking):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        top = sorted(fused.items(), key=lambda item: -item[1])[:k]
        rows = self.store.chunk_rows([chunk_id for chunk_id, _ in top])
        thresholds = {c.name: _min_similarity(c.embedder) for c in collections}
        passages = []
        for chunk_id, score in top:
            row = rows.get(chunk_id)
            if row is None:  # removed since the ranking was read
                continue
            cosine = similarity.get(chunk_id)
            share = matched_terms(query, row.text)
            relevant = share >= MIN_KEYWORD_SHARE or cosine >= thresholds[row.collection]
            passages.append(
                Passage(
                    row.collection,
                    row.source,
                    row.page,
                    row.section,
                    row.text,
                    round(score, 6),
                    round(cosine, 4),
                    round(share, 3),
                    relevant,
                    chunk_id,
                )
            )
        return passages

    def _similarities(self, collections: list[Collection], query: str) -> _Similarities:
        """Cosine of the query with every embedded passage of the collections."""
        found = _Similarities()
        query_vectors: dict[str, np.ndarray] = {}
        for collection in collections:
            ids, matrix, rows = self._matrix(collection)
            if not len(ids):
                continue
            if collection.embedder not in query_vectors:
                embedder = self.embedder_for(collection.embedder)
                query_vectors[collection.embedder] = embedder.embed([query])[0]
            vector = query_vectors[collection.embedder]
            if vector.shape[0] != matrix.shape[1]:
                continue  # vectors from before an embedder change, not yet re-made
            found.parts.append((ids, matrix @ vector, rows))
        return found


class _Similarities:
    """The query's cosine with each collection's passages (numpy arrays, no copies)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, dict[int, int]]] = []

    def best(self, count: int) -> list[int]:
        """Ids of the `count` most similar passages, most similar first."""
        if not self.parts:
            return []
        ids = np.concatenate([p[0] for p in self.parts])
        sims = np.concatenate([p[1] for p in self.parts])
        count = min(count, len(sims))
        top = np.argpartition(-sims, count - 1)[:count]
        return ids[top[np.argsort(-sims[top])]].tolist()

    def get(self, chunk_id: int) -> float:
        """The cosine of one passage (0.0 when it has no vector)."""
        for _, sims, rows in self.parts:
            if chunk_id in rows:
                return float(sims[rows[chunk_id]])
        return 0.0


def _min_similarity(embedder: str) -> float:
    return MIN_SIMILARITY.get(embedder, DEFAULT_MIN_SIMILARITY)
