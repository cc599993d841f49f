"""Embedders: text to unit-length float32 vectors, behind one small interface.

`Embedder` is a LangChain `Embeddings` (`embed_documents`, `embed_query`), so a collection's
embedder works in any LangChain code; LocalChat itself calls `embed(texts)`, which returns a
numpy matrix of unit rows. Three kinds, named by a spec string stored with each collection:

- "wordllama" (the default): WordLlama's 256-dimension model, shipped in its wheel (MIT),
  offline, about 1,200 passages a second on 2 cores. English-centred: Korean passages are
  found through the keyword index more than through it.
- "gguf:FILE": an embedding model from the models folder (e.g. nomic-embed-text, a multilingual
  e5/bge GGUF) through llama-cpp-python with `embedding=True`.
- "remote:BACKEND/MODEL": the `/v1/embeddings` endpoint of a configured [[backends]] server.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from ..config import Config
from .errors import DocumentsError

DEFAULT_EMBEDDER = "wordllama"
BATCH = 32  # texts per call: small enough that pausing between batches is quick


def unit_rows(matrix: Any) -> np.ndarray:
    """`matrix` as float32 rows of length 1 (an all-zero row stays zero)."""
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1, norms)


class Embedder(Embeddings):
    """Turns passages and queries into unit vectors. `spec` names it in the database."""

    spec: str

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit float32 row per text."""

    def embed_query(self, text: str) -> list[float]:
        """LangChain: the vector of a search query."""
        return self.embed([text])[0].tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain: the vectors of passages."""
        return self.embed(list(texts)).tolist()

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens `texts` make (for the API's usage figures); an estimate, 4 bytes a token,
        where the embedder has no tokenizer of its own."""
        return sum(len(t.encode("utf-8")) // 4 + 1 for t in texts)

    def close(self) -> None:  # most embedders hold nothing to release
        """Release what the embedder holds (a loaded model, a connection)."""


class WordLlamaEmbedder(Embedder):
    """WordLlama's bundled model, loaded from the package folder: no download, ever."""

    spec = "wordllama"

    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        # Its default looks for the tokenizer in the wrong folder and then calls the Hub.
        self._model = WordLlama.load(
            cache_dir=Path(wordllama.__file__).parent, disable_download=True
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 256), dtype=np.float32)
        return unit_rows(self._model.embed(texts, norm=True, batch_size=BATCH))

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens of WordLlama's own tokenizer (its padding left out)."""
        return sum(sum(e.attention_mask) for e in self._model.tokenize(list(texts)))


class GgufEmbedder(Embedder):
    """An embedding model in a GGUF file, run by llama.cpp in this process."""

    def __init__(self, path: Path, *, n_ctx: int = 2048, n_threads: int = 0) -> None:
        import llama_cpp

        from ..load_settings import physical_cores

        self.spec = f"gguf:{path.name}"
        settings = {
            "model_path": str(path),
            "embedding": True,
            "n_ctx": n_ctx,
            "n_batch": n_ctx,
            "n_ubatch": n_ctx,
            "n_threads": n_threads or physical_cores(),
            "n_gpu_layers": 0,
            "verbose": False,
        }
        try:
            self._llama = llama_cpp.Llama(**settings)
            if self._llama.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
                # The file names no pooling (a decoder model): average its tokens.
                self._llama.close()
                pooling = llama_cpp.LLAMA_POOLING_TYPE_MEAN
                self._llama = llama_cpp.Llama(**settings, pooling_type=pooling)
        except (ValueError, RuntimeError) as exc:
            raise DocumentsError(
                f"{path.name} cannot be loaded as an embedding model: {exc}"
            ) from None

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # truncate: a passage longer than the model's context keeps its start.
        return unit_rows(self._llama.embed(texts, truncate=True))

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens of the model's own tokenizer."""
        return sum(len(self._llama.tokenize(t.encode("utf-8"), True, False)) for t in texts)

    def close(self) -> None:
        self._llama.close()


class RemoteEmbedder(Embedder):
    """A server's OpenAI-compatible `/v1/embeddings` (llama-server --embedding, vLLM, ...)."""

    def __init__(self, config: Config, backend: str, model: str) -> None:
        self.spec = f"remote:{backend}/{model}"
        found = config.backend(backend)
        if found is None:
            raise DocumentsError("remote:local is not an embedder: use wordllama or gguf:FILE")
        self.backend, self.model = found, model

    def embed(self, texts: list[str]) -> np.ndarray:
        import httpx2

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        key = self.backend.api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        where = f"backend {self.backend.name!r}"
        try:
            response = httpx2.post(
                f"{self.backend.base_url}/embeddings",
                json={"model": self.model, "input": texts},
                headers=headers,
                timeout=120,
            )
        except httpx2.HTTPError as exc:
            raise DocumentsError(f"{where} did not answer for embeddings: {exc}") from None
        if response.status_code != 200:
            raise DocumentsError(
                f"{where} refused embeddings for {self.model!r}: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            # A server without pooling sends one vector per token: their mean is the text's.
            return unit_rows([_pooled(item["embedding"]) for item in data])
        except (ValueError, KeyError, TypeError):
            raise DocumentsError(f"{where} sent embeddings in an unknown shape") from None


def _pooled(embedding: Any) -> np.ndarray:
    vectors = np.asarray(embedding, dtype=np.float32)
    return vectors.mean(axis=0) if vectors.ndim == 2 else vectors


def checked_spec(spec: str, config: Config) -> str:
    """`spec` if it names an embedder this configuration has (the file or backend exists)."""
    if spec == DEFAULT_EMBEDDER:
        return spec
    kind, _, rest = spec.partition(":")
    if kind == "gguf" and rest:
        from ..model_files import resolve_model

        try:
            resolve_model(rest, config.models_dir)
        except Exception as exc:
            raise DocumentsError(f"embedder {spec!r}: {exc}") from None
        return f"gguf:{Path(rest).name}"
    if kind == "remote" and "/" in rest:
        backend, model = rest.split("/", 1)
        config.backend(backend)  # ConfigError names the configured ones
        if model:
            return spec
    raise DocumentsError(
        f"unknown embedder {spec!r}: use wordllama, gguf:FILE (an embedding model in the "
        "models folder) or remote:BACKEND/MODEL"
    )


def load_embedder(spec: str, config: Config) -> Embedder:
    """The embedder a spec names, loaded."""
    spec = checked_spec(spec, config)
    if spec == DEFAULT_EMBEDDER:
        return WordLlamaEmbedder()
    kind, rest = spec.split(":", 1)
    if kind == "gguf":
        from ..model_files import resolve_model

        return GgufEmbedder(resolve_model(rest, config.models_dir))
    backend, model = rest.split("/", 1)
    return RemoteEmbedder(config, backend, model)
