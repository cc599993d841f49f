"""web/taipy_state.py: the faster `_set_context` picks the same module context as Taipy's own,
and is only installed over the Taipy source it was written for."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from taipy.gui.state import _GuiState

from web import taipy_state


class _Contexts:
    """Records what `_set_context` asks of the Gui (the only Gui calls it makes)."""

    def __init__(self, current: str) -> None:
        self.current = current
        self.set_to: list[str] = []

    def _get_locals_context(self) -> str:
        return self.current

    def _set_locals_context(self, context: str) -> contextlib.AbstractContextManager[None]:
        self.set_to.append(context)
        return contextlib.nullcontext()


# Stands where State.__setattr__ calls `_set_context`, in a module of its own (as Taipy's is),
# so that taking the wrong frame gives another module than this one, the caller's.
_accessor: dict[str, Any] = {"__name__": "taipy_accessor"}
exec("def through(method, state, gui):\n    method(state, gui)\n", _accessor)
_through_accessor = _accessor["through"]


def _resolve(method: Any, current: str, placeholder: str | None) -> list[str]:
    gui = _Contexts(current)
    state = _GuiState(gui, [], [])
    if placeholder is not None:
        state._set_placeholder("_current_context", placeholder)
    _through_accessor(method, state, gui)  # this module is the caller
    return gui.set_to


@pytest.mark.parametrize(
    ("current", "placeholder"),
    [
        ("pages.chat", None),  # another module: switch to the caller's
        (__name__, None),  # already the caller's: nothing to do
        (f"{__name__}.inner", None),  # a context inside the caller's module: kept
        ("pages.chat", "pages.models"),  # `state["pages.models"].x`: that module
        ("pages.models", "pages.models"),  # the placeholder is the current one: caller's
    ],
)
def test_same_context_as_taipy(current: str, placeholder: str | None) -> None:
    original = getattr(_GuiState, "_localchat_original", _GuiState._set_context)
    assert _resolve(taipy_state._set_context, current, placeholder) == _resolve(
        original, current, placeholder
    )


def test_installed_only_over_the_known_taipy_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Taipy upgrade that changes this method makes this fail: check the copy, then the hash.
    assert taipy_state.source_digest() == taipy_state._KNOWN_SOURCE
    original = getattr(_GuiState, "_localchat_original", None) or _GuiState._set_context
    monkeypatch.setattr(_GuiState, "_set_context", original)
    monkeypatch.setattr(_GuiState, "_localchat_original", None, raising=False)
    known = taipy_state._KNOWN_SOURCE
    monkeypatch.setattr(taipy_state, "_KNOWN_SOURCE", "another taipy")
    assert taipy_state.install() is False
    assert _GuiState._set_context is original
    monkeypatch.setattr(taipy_state, "_KNOWN_SOURCE", known)
    assert taipy_state.install() is True
    assert _GuiState._set_context is taipy_state._set_context
