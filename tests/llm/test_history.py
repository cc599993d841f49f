"""trim_history: oldest whole exchanges go first; system prompt and new message never do."""

from __future__ import annotations

import pytest

from llm.errors import PromptError
from llm.history import trim_history


def conversation(pairs: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "S"}]
    for i in range(pairs):
        messages += [
            {"role": "user", "content": f"u{i}"},
            {"role": "assistant", "content": f"a{i}"},
        ]
    return [*messages, {"role": "user", "content": "new"}]


def count(messages: list[dict[str, str]]) -> int:
    return 10 * len(messages)  # every message costs 10 tokens


def test_fits_without_dropping() -> None:
    result = trim_history(conversation(3), count, budget=80)
    assert result.dropped_turns == 0 and len(result.messages) == 8


def test_drops_oldest_pairs_with_slack_and_keeps_system_and_new() -> None:
    result = trim_history(conversation(10), count, budget=100, slack=0.25)
    # 100 * 0.75 = 75 -> system + new + 2 pairs (60 tokens); 3 pairs would be 80
    assert result.dropped_turns == 8 and result.prompt_tokens == 60
    assert result.messages[0]["content"] == "S" and result.messages[-1]["content"] == "new"
    assert [m["content"] for m in result.messages[1:-1]] == ["u8", "a8", "u9", "a9"]


def test_keeps_previous_start_while_it_fits() -> None:
    first = trim_history(conversation(10), count, budget=100)
    later = trim_history(conversation(11), count, budget=100, keep_from=first.first_turn)
    assert later.first_turn == first.first_turn  # same prefix: cache reuse
    assert later.messages[: len(first.messages) - 1] == first.messages[:-1]


def test_too_long_even_alone() -> None:
    with pytest.raises(PromptError, match="too long"):
        trim_history(conversation(2), count, budget=15)
