"""Keeping every tab's pages up to date after a change that concerns them all, without pages
importing each other.

A page subscribes a function of its own to a topic; whoever makes the change publishes the
topic, in one tab (`publish`) or in every tab (`publish_everywhere`), and each subscriber runs
with that tab's state (so it sees its own page's variables). Topics:
- `MODELS`: what is loaded, what the models folder holds, where new chats go;
- `MODEL_ADDED` (file name): a download or the starter model added a model, for the tab that
  asked (its models page selects it);
- `DOCUMENTS`: a collection was made, removed or (re)indexed (the chat page's choices);
- `CHATS`: a chat was made, renamed, pinned, deleted or imported (the chat page's list).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taipy.gui import Gui, State

MODELS = "models"
MODEL_ADDED = "model_added"
DOCUMENTS = "documents"
CHATS = "chats"

_subscribers: dict[str, list[Callable[..., None]]] = {}


def subscribe(topic: str, refresh: Callable[..., None]) -> None:
    """Run `refresh(state, *args)` in each tab the topic is published to."""
    _subscribers.setdefault(topic, []).append(refresh)


def publish(state: State, topic: str, *args: Any) -> None:
    """The change happened: refresh this tab."""
    for refresh in _subscribers.get(topic, []):
        refresh(state, *args)


def publish_everywhere(gui: Gui, topic: str, *args: Any) -> None:
    """The change happened: refresh every tab (from a callback or any thread)."""
    gui.broadcast_callback(publish, [topic, *args])
