"""Errors of the documents feature, each one sentence a user can act on."""

from ..errors import LocalChatError


class DocumentsError(LocalChatError):
    """A collection or search request cannot be done: bad name, path, embedder or query."""


class CollectionNotFoundError(DocumentsError):
    """No collection has the given name."""


class UnreadableFileError(DocumentsError):
    """A document cannot be read (encrypted, corrupt, not text, too large, too slow)."""


class PathRefusedError(DocumentsError):
    """A folder or file cannot be added; `reason` says why in one word, for a page to say it
    in the user's language: missing, unsupported, own (LocalChat's own data, models or
    config), holds_own (a folder holding them), outside_roots (not under `[documents] roots`)."""

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason
