"""Chat with your documents, offline: collections of files, hybrid search, cited passages.

Modules: `loaders` (PDF, DOCX, Markdown, text, HTML as LangChain Documents, within limits),
`splitting` (passages), `embedders` (WordLlama, GGUF, remote /v1/embeddings), `store` (SQLite:
`<data_dir>/documents.db`), `indexer` (incremental indexing), `index_process` (indexing in a
helper process with limits, pausing while a reply streams), `search` (FTS5 + vectors, fused),
`context` (the prompt block, budgets, whole documents), `chat` (asking with documents),
`library` (all of it behind one object). No Taipy here.
"""

from .chat import ask_with_documents, ask_with_whole_document, whole_document_budget
from .context import RetrievedContext, WholeDocument, build_context, context_budget
from .embedders import DEFAULT_EMBEDDER, Embedder, load_embedder
from .errors import (
    CollectionNotFoundError,
    DocumentsError,
    PathRefusedError,
    UnreadableFileError,
)
from .index_process import IndexingService
from .library import CollectionInfo, IndexProgress, Library
from .search import Passage

__all__ = [
    "DEFAULT_EMBEDDER",
    "CollectionInfo",
    "CollectionNotFoundError",
    "DocumentsError",
    "Embedder",
    "IndexProgress",
    "IndexingService",
    "Library",
    "Passage",
    "PathRefusedError",
    "RetrievedContext",
    "UnreadableFileError",
    "WholeDocument",
    "ask_with_documents",
    "ask_with_whole_document",
    "build_context",
    "context_budget",
    "load_embedder",
    "whole_document_budget",
]
