"""What one reply cost (`Figures`), and the one line that says it (`figures_line`).

The command line, Markdown exports and the chat page all show a reply's figures through
`figures_line`; the pages pass their own words (`FIGURE_WORDS` has the English ones, the
keys every language gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FIGURE_WORDS: Mapping[str, str] = {
    "prompt": "prompt {n} tokens",
    "prompt_cached": "prompt {n} tokens ({cached} cached)",
    "first_token": "first token {s:.2f} s",
    "tokens": "{n} tokens",
    "tokens_rate": "{n} tokens at {rate:.1f} tokens/s",
    "dropped": "{n} oldest exchanges left out to fit the context",
}


@dataclass(frozen=True)
class Figures:
    """What one reply cost. `cached_tokens` is None when not known (a stored reply)."""

    prompt_tokens: int = 0
    cached_tokens: int | None = 0
    completion_tokens: int = 0
    time_to_first_token_s: float = 0.0
    tokens_per_second: float = 0.0
    prompt_tokens_per_second: float = 0.0
    dropped_turns: int = 0
    finish_reason: str = ""

    def line(self, words: Mapping[str, str] = FIGURE_WORDS, *, prompt: bool = True) -> str:
        """`figures_line(self, ...)`."""
        return figures_line(self, words, prompt=prompt)


def figures_line(
    figures: Figures, words: Mapping[str, str] = FIGURE_WORDS, *, prompt: bool = True
) -> str:
    """One line: the prompt (unless `prompt` is False), the time to the first token, the
    reply's tokens and rate (left out when 0: not measured, e.g. a burst from a server), and
    how many old exchanges were left out."""
    parts = []
    if prompt:
        key = "prompt" if figures.cached_tokens is None else "prompt_cached"
        parts.append(words[key].format(n=figures.prompt_tokens, cached=figures.cached_tokens))
    parts.append(words["first_token"].format(s=figures.time_to_first_token_s))
    rate = figures.tokens_per_second
    key = "tokens_rate" if rate else "tokens"
    parts.append(words[key].format(n=figures.completion_tokens, rate=rate))
    if figures.dropped_turns:
        parts.append(words["dropped"].format(n=figures.dropped_turns))
    return " · ".join(parts)
