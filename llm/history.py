"""Fitting a conversation into the context window by dropping the oldest whole turns.

The system prompt and the new user message are never dropped. Once trimming is needed it
drops a little more than necessary, and later turns keep the same first turn while it still
fits, so the retained prefix stays byte-identical and llama.cpp's prefix cache is reused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import PromptError
from .prompts import Message


@dataclass(frozen=True)
class TrimResult:
    """The messages to send, and how many earlier exchanges were left out."""

    messages: list[Message]
    first_turn: int  # index of the first kept exchange; pass back as `keep_from`
    dropped_turns: int
    prompt_tokens: int


def _build(messages: Sequence[Message], first_turn: int) -> list[Message]:
    system = [m for m in messages[:1] if m["role"] == "system"]
    body = list(messages[len(system) :])
    # body is user/assistant pairs followed by the new user message
    return [*system, *body[2 * first_turn :]]


def trim_history(
    messages: Sequence[Message],
    count_tokens: Callable[[list[Message]], int],
    budget: int,
    *,
    keep_from: int = 0,
    slack: float = 0.25,
) -> TrimResult:
    """Drop the oldest exchanges until `count_tokens(messages) <= budget`.

    `keep_from` is the `first_turn` of the previous call: reused while it fits. When more must
    go, turns are dropped until the prompt fits in `budget * (1 - slack)` where possible, so the
    next few turns fit without moving the start again.
    """
    n_pairs = (len(messages) - (1 if messages[0]["role"] == "system" else 0) - 1) // 2
    minimal = _build(messages, n_pairs)
    minimal_tokens = count_tokens(minimal)
    if minimal_tokens > budget:
        raise PromptError(
            f"the message is too long: with the system prompt it needs {minimal_tokens} "
            f"tokens, but the context leaves room for {budget} (context size minus max_tokens)"
        )
    start = min(max(keep_from, 0), n_pairs)
    kept = _build(messages, start)
    tokens = count_tokens(kept)
    if tokens <= budget:
        return TrimResult(kept, start, start, tokens)
    target = int(budget * (1 - slack))
    best: TrimResult | None = None
    for first in range(start + 1, n_pairs + 1):
        kept = _build(messages, first)
        tokens = count_tokens(kept)
        if tokens <= budget and best is None:
            best = TrimResult(kept, first, first, tokens)
        if tokens <= target:
            return TrimResult(kept, first, first, tokens)
    return best or TrimResult(minimal, n_pairs, n_pairs, minimal_tokens)
