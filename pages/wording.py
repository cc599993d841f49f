"""Errors in words: what a page tells the user about an error, in the tab's language.

The library raises `LocalChatError`s that carry a `code` and the values the problem names
(llm/errors.py); this module is the one place that turns them into a sentence, from the
labels `err_<code>` (pages/i18n.py). A label may use the error's values and `{detail}`, the
library's own English sentence (for problems without words of their own yet). The command
line prints the library's sentence as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm.errors import LocalChatError


def error_text(error: BaseException | str, t: Mapping[str, str]) -> str:
    """`error` as the user reads it in the labels' language (a plain string is already
    worded, e.g. a failure reported by another thread)."""
    if isinstance(error, str):
        return error
    detail = str(error) or type(error).__name__
    if not isinstance(error, LocalChatError):
        return detail
    return coded_text(error.code, error.values, detail, t)


def coded_text(code: str, values: Mapping[str, Any], detail: str, t: Mapping[str, str]) -> str:
    """The words for an error `code` with its `values`; `detail` if it has none."""
    key = f"err_{code}"
    if code == "out_of_range":
        if values.get("min_open"):
            key += "_min_open"
        elif values.get("max_open"):
            key += "_max_open"
    template = t.get(key)
    if template is None:
        return detail
    words = {name: _shown(value) for name, value in values.items()}
    field = values.get("field")
    if isinstance(field, str):
        words["field"] = t.get(field) or t.get(f"field_{field}") or field
    try:
        return template.format(detail=detail, **words)
    except (KeyError, IndexError, ValueError):  # a raise without the values its words need
        return detail


def _shown(value: Any) -> str:
    """A number as people write it: 5 (not 5.0), 1,000,000."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)
