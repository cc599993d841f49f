"""Markdown written by a model, made safe to append to: `close_open_fence`.

A model often stops (end of turn, max tokens, Stop) inside a fenced code block it never
closes. Markdown then runs the block to the end of the document, so whatever comes after the
reply (the figures line under it on the page, the next messages of an exported chat) would be
shown as code.
"""

from __future__ import annotations

import re

# CommonMark: a fence is 3+ backticks or tildes indented at most 3 spaces; a backtick fence's
# info string has no backtick; a closing fence is the same character, at least as long, alone.
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def close_open_fence(text: str) -> str:
    """`text`, with a closing fence added if it ends inside a fenced code block."""
    opened = ""
    for line in text.split("\n"):
        match = _FENCE.fullmatch(line.rstrip("\r"))
        if match is None:
            continue
        fence, rest = match.groups()
        if not opened:
            if not (fence[0] == "`" and "`" in rest):
                opened = fence
        elif fence[0] == opened[0] and len(fence) >= len(opened) and not rest.strip(" \t"):
            opened = ""
    return f"{text}\n{opened}" if opened else text
