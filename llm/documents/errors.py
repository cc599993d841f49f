"""Errors of the documents feature, each one sentence a user can act on."""

from ..errors import LocalChatError


class DocumentsError(LocalChatError):
    """A collection or search request cannot be done: bad name, path, embedder or query."""


class CollectionNotFoundError(DocumentsError):
    """No collection has the given name."""


class UnreadableFileError(DocumentsError):
    """A document cannot be read (encrypted, corrupt, not text, too large, too slow)."""
