"""Exceptions LocalChat raises for problems a user can act on.

Each carries one plain English sentence (the command line prints it on one line and exits with
status 2) and, for the pages, a `code` with the `values` it names: the pages word the problem
in the user's language from those (pages/wording.py), not from the sentence.
"""

from __future__ import annotations

from typing import Any


class LocalChatError(Exception):
    """Base class: a problem with the user's input, files or settings.

    `code` names the kind of problem (each class has its own; a raise may give a finer one,
    e.g. "out_of_range"), `values` what the words need (field, value, min, max, ...)."""

    code = "error"

    def __init__(self, message: str = "", *, code: str | None = None, **values: Any) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.values: dict[str, Any] = values


class ConfigError(LocalChatError):
    """config.toml (or a flag overriding it) has an unknown key or a bad value."""

    code = "config"


class ModelFileError(LocalChatError):
    """A model file is missing, unreadable, or not a usable GGUF file."""

    code = "model_file"


class ModelNotFoundError(ModelFileError):
    """A model name does not match a file in the models folder."""

    code = "model_not_found"


class InsufficientMemoryError(ModelFileError):
    """The model (weights + KV cache + runtime) needs more RAM than is available."""

    code = "not_enough_memory"


class PromptError(LocalChatError):
    """A conversation cannot be rendered: bad roles, bad JSON, too long for the context."""

    code = "prompt"


class EngineError(LocalChatError):
    """The inference worker failed: it crashed, or llama.cpp refused the model."""

    code = "engine"


class NoModelError(EngineError):
    """A message came, and no model is loaded to answer it."""

    code = "no_model"


class StorageError(LocalChatError):
    """The chat database cannot be used: unreadable, from a newer LocalChat, stayed locked."""

    code = "storage"


class ChatNotFoundError(StorageError):
    """No stored chat has the given id (deleted, or never existed)."""

    code = "chat_not_found"


class MessageError(StorageError, ValueError):
    """An action on a message that does not apply: editing a reply as if it were a question,
    continuing a reply that ended, a message of another chat."""


class MessageNotFoundError(MessageError):
    """No message of the chat has the given id (deleted, or never existed)."""


class ChatImportError(StorageError):
    """A file given to import is not a valid LocalChat chat export."""

    code = "chat_import"


class BackendError(EngineError):
    """A remote OpenAI-compatible server (a [[backends]] entry) failed or refused a request."""

    code = "backend"


class BackendUnreachableError(BackendError):
    """The server did not answer: connection refused, unknown host name, or a timeout."""

    code = "backend_unreachable"


class BackendAuthError(BackendError):
    """The server refused the API key (HTTP 401/403)."""

    code = "backend_auth"


class BackendModelNotFoundError(BackendError):
    """The server does not offer the model asked for."""

    code = "backend_model_not_found"


class BackendStreamError(BackendError):
    """The server broke off a reply midway; `partial_text` holds what had arrived."""

    code = "backend_stream"

    def __init__(self, message: str, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text


class HubError(LocalChatError):
    """The Hub could not give us a model: the reason is in the message."""

    code = "hub"


class HubNotFoundError(HubError):
    """No such repository, revision or file (HTTP 404)."""

    code = "hub_not_found"


class HubAccessError(HubError):
    """Gated or private repository, or a refused token (HTTP 401/403)."""

    code = "hub_access"


class HubNetworkError(HubError):
    """The Hub cannot be reached, or answered with a server error."""

    code = "hub_network"


class HubUnreachableError(HubNetworkError):
    """No connection to the Hub at all: no network, an unknown host name, nothing listening,
    or no answer in time."""

    code = "hub_unreachable"


class HubOfflineError(HubNetworkError):
    """HF_HUB_OFFLINE is set."""

    code = "hub_offline"


class DiskFullError(HubError):
    """Not enough free disk space in the models folder."""

    code = "disk_full"


class ChecksumError(HubError):
    """The downloaded bytes do not match the Hub's SHA-256; the file was deleted."""

    code = "checksum"


class DownloadCancelled(HubError):
    """The user cancelled the download."""

    code = "download_cancelled"


class UnsafeFileNameError(HubError):
    """A file name that would land outside the models folder, or is not a .gguf file."""

    code = "unsafe_file_name"
