"""Exceptions LocalChat raises for problems a user can act on.

Each carries one plain sentence; the command line prints it on one line and
exits with status 2, the web pages show it as a notification.
"""


class LocalChatError(Exception):
    """Base class: a problem with the user's input, files or settings."""


class ConfigError(LocalChatError):
    """config.toml (or a flag overriding it) has an unknown key or a bad value."""


class ModelFileError(LocalChatError):
    """A model file is missing, unreadable, or not a usable GGUF file."""


class ModelNotFoundError(ModelFileError):
    """A model name does not match a file in the models folder."""


class InsufficientMemoryError(ModelFileError):
    """The model (weights + KV cache + runtime) needs more RAM than is available."""


class PromptError(LocalChatError):
    """A conversation cannot be rendered: bad roles, bad JSON, too long for the context."""


class EngineError(LocalChatError):
    """The inference worker failed: it crashed, or llama.cpp refused the model."""


class NoModelError(EngineError):
    """A message came, and no model is loaded to answer it."""


class StorageError(LocalChatError):
    """The chat database cannot be used: unreadable, from a newer LocalChat, stayed locked."""


class ChatNotFoundError(StorageError):
    """No stored chat has the given id (deleted, or never existed)."""


class MessageError(StorageError, ValueError):
    """An action on a message that does not apply: editing a reply as if it were a question,
    continuing a reply that ended, a message of another chat."""


class MessageNotFoundError(MessageError):
    """No message of the chat has the given id (deleted, or never existed)."""


class ChatImportError(StorageError):
    """A file given to import is not a valid LocalChat chat export."""


class BackendError(EngineError):
    """A remote OpenAI-compatible server (a [[backends]] entry) failed or refused a request."""


class BackendUnreachableError(BackendError):
    """The server did not answer: connection refused, unknown host name, or a timeout."""


class BackendAuthError(BackendError):
    """The server refused the API key (HTTP 401/403)."""


class BackendModelNotFoundError(BackendError):
    """The server does not offer the model asked for."""


class BackendStreamError(BackendError):
    """The server broke off a reply midway; `partial_text` holds what had arrived."""

    def __init__(self, message: str, partial_text: str = "") -> None:
        super().__init__(message)
        self.partial_text = partial_text


class HubError(LocalChatError):
    """The Hub could not give us a model: the reason is in the message."""


class HubNotFoundError(HubError):
    """No such repository, revision or file (HTTP 404)."""


class HubAccessError(HubError):
    """Gated or private repository, or a refused token (HTTP 401/403)."""


class HubNetworkError(HubError):
    """The Hub cannot be reached, or answered with a server error."""


class HubOfflineError(HubNetworkError):
    """HF_HUB_OFFLINE is set."""


class DiskFullError(HubError):
    """Not enough free disk space in the models folder."""


class ChecksumError(HubError):
    """The downloaded bytes do not match the Hub's SHA-256; the file was deleted."""


class DownloadCancelled(HubError):
    """The user cancelled the download."""


class UnsafeFileNameError(HubError):
    """A file name that would land outside the models folder, or is not a .gguf file."""
