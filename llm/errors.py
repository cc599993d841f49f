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


class PromptError(LocalChatError):
    """A conversation cannot be rendered: bad roles, bad JSON, too long for the context."""


class EngineError(LocalChatError):
    """The inference worker failed: it crashed, or llama.cpp refused the model."""
