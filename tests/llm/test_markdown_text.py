"""A code block a model leaves open is closed before anything is written after the reply: on
the page (the figures line, checked in Chromium in test_web_real_model.py) and in a Markdown
export (the next messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.chat_export import chat_to_markdown
from llm.markdown_text import close_open_fence
from llm.storage import ChatStore

# What SmolLM2-135M-Instruct answers at temperature 0 to "Write a Python function that adds
# two numbers": it ends its turn inside the block.
OPEN_BLOCK = "```python\ndef add_numbers(a, b):\n    return a + b"


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        (OPEN_BLOCK, OPEN_BLOCK + "\n```"),
        ("```python\nx = 1\n```", None),  # closed already
        ("Use ``` to fence code.", None),  # not at the start of a line: no fence
        ("~~~\ncode\n````", "~~~\ncode\n````\n~~~"),  # another character does not close
        ("````\n```\nstill code", "````\n```\nstill code\n````"),  # a shorter one neither
        ("```py `x`\nnot a fence", None),  # a backtick fence's info has no backtick
        ("   ```\nthree spaces in", "   ```\nthree spaces in\n```"),
        ("    ```\nfour spaces: an indented line", None),
        ("```\na\n```\n\n```js\nb", "```\na\n```\n\n```js\nb\n```"),  # the second is open
        ("```\r\ncode\r\n```\r\n", None),
    ],
)
def test_only_an_open_code_block_is_closed(text: str, closed: str | None) -> None:
    assert close_open_fence(text) == (closed or text)


def test_an_export_after_an_open_code_block_is_not_code(tmp_path: Path) -> None:
    store = ChatStore(tmp_path / "chats.db")
    chat_id = store.create_chat(system_prompt="", settings={}, model="m.gguf", chat_format="auto")
    store.add_message(chat_id, "user", "Write a Python function that adds two numbers")
    store.add_message(chat_id, "assistant", OPEN_BLOCK, model="m.gguf", format="gguf")
    store.add_message(chat_id, "user", "Thanks!")
    text = chat_to_markdown(store.get_chat(chat_id))
    assert OPEN_BLOCK + "\n```\n\n## User · " in text
    assert text.count("```") == 2
    store.close()
