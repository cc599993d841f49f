"""A faster stand-in for one Taipy internal: how a `State` finds the module of its caller.

Why: Taipy 4.1 (`taipy.gui.state._GuiState._set_context`) calls `inspect.stack()` twice on
every read or write of a state variable, only to take the caller's frame. `inspect.stack()`
builds every frame of the stack with its source lines: 4-9 ms per access at a callback's depth
(measured here), so a handler that touches twenty variables spends a tenth of a second of CPU
on it, taken from llama.cpp's threads on a small machine. `install()` replaces the method with
the same logic reading that one frame with `sys._getframe`. It changes nothing if Taipy's
method is not the one this was written for (checked by its source), so an upgrade of Taipy
falls back to Taipy's own code.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from taipy.gui.state import _GuiState
from taipy.gui.utils import _get_module_name_from_frame

# sha256 of the source of taipy-gui 4.1's `_GuiState._set_context`.
_KNOWN_SOURCE = "2cafda63afde640feb8304eb44e3b0d3ddc116270cc69ccd551b292b9a411ac0"
_CONTEXT_ATTR = "_current_context"  # `_GuiState.__placeholder_attrs[1]`


def _set_context(self: Any, gui: Any) -> AbstractContextManager[None]:
    if (pl_ctx := self._get_placeholder(_CONTEXT_ATTR)) is not None:
        self._set_placeholder(_CONTEXT_ATTR, None)
        if pl_ctx != gui._get_locals_context():
            return gui._set_locals_context(pl_ctx)
    # Frames: 0 this function, 1 the state's __getattribute__ / __setattr__, 2 their caller
    # (Taipy's `inspect.stack()[2].frame`).
    ctx = _get_module_name_from_frame(sys._getframe(2))
    current_context = gui._get_locals_context()
    # As Taipy: ignore the caller's module when the current context starts with it.
    if ctx != current_context and not current_context.startswith(str(ctx)):
        return gui._set_locals_context(ctx)
    return nullcontext()


def source_digest() -> str:
    """sha256 of the source of Taipy's own `_set_context` (before `install`)."""
    original = getattr(_GuiState, "_localchat_original", None) or _GuiState._set_context
    return hashlib.sha256(inspect.getsource(original).encode()).hexdigest()


def install() -> bool:
    """Use the faster `_set_context` if Taipy's is the known one; True when installed."""
    if getattr(_GuiState, "_localchat_original", None) is not None:
        return True
    if source_digest() != _KNOWN_SOURCE:
        return False
    _GuiState._localchat_original = _GuiState._set_context
    _GuiState._set_context = _set_context
    return True
