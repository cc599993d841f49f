"""Objects the server keeps for each browser tab, out of the page's reach.

A Taipy client can set any page variable over the websocket, then fire any action. So what a
callback must be able to trust — the objects a reply runs on, which chat is open, whether a
reply is running, which rows (repositories, files, downloads) a table showed — is kept here,
keyed by the tab's state id, and page variables only show it. Entries live as long as Taipy
keeps the tab's state (until the app stops).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from taipy.gui import State, get_state_id

T = TypeVar("T")


class PerTab(Generic[T]):
    """One `T` per tab, made by `make()` on the tab's first use (or by `reset`)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._items: dict[str, T] = {}

    def __call__(self, state: State) -> T:
        """This tab's object (a tab from before a restart gets a new one)."""
        key = get_state_id(state) or ""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = self._items[key] = self._make()
            return item

    def reset(self, state: State) -> T:
        """A new object for this tab (a new tab, or one that starts over)."""
        item = self._make()
        with self._lock:
            self._items[get_state_id(state) or ""] = item
        return item
