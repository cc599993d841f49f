"""What every path is asked to do: the conversation, the sampling settings, the prompt text.

All four paths get the same system prompt, the same questions in the same order, the same
sampling settings and seeds, the same number of threads and the same number of generated tokens
per reply (end-of-sequence suppressed), so their timings differ only by what each path adds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SYSTEM_PROMPT = "You are a geography expert and assist users by answering their questions"

# A growing conversation: ten short follow-up questions, like a user's.
QUESTIONS = [
    "Which river flows through the capital of France, and what are its oldest bridges?",
    "How long is that river, and where does it reach the sea?",
    "What are the largest cities along its banks?",
    "Which mountains are close to the source of the river?",
    "What is the climate like in the north of the country in winter?",
    "Name three islands that belong to France and the seas around them.",
    "How many people live in the capital today, and how has that changed?",
    "Which countries share a border with France?",
    "What is the highest mountain in the Alps, and how tall is it?",
    "Summarize what we discussed about rivers, cities and mountains.",
]


def question(turn: int, conversation: int) -> str:
    """The user message of `turn` (0-based) in conversation number `conversation`.

    The first message names the conversation, so that a new conversation's first prompt is not
    already in llama.cpp's prefix cache from the previous repetition (only the system prompt,
    identical in every conversation, is: as in the app after "New chat").
    """
    text = QUESTIONS[turn % len(QUESTIONS)]
    return f"Conversation {conversation}. {text}" if turn == 0 else text


@dataclass(frozen=True)
class Settings:
    """One benchmark run's fixed settings."""

    model_path: str
    threads: int = 2
    n_ctx: int = 2048
    n_batch: int = 512
    tokens: int = 64  # generated per reply, always (EOS suppressed)
    turns: int = 10
    repetitions: int = 3
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int = 1234

    def seed_for(self, turn: int) -> int:
        """The sampling seed of a turn (the same for every path)."""
        return self.seed + turn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PromptRenderer:
    """Prompt text for a model exactly as the engine renders it with `chat_format = "auto"`
    (the GGUF's own template, else a format guessed from the name, else ChatML)."""

    def __init__(self, model_path: str) -> None:
        from llm.model_files import choose_format, read_model_file

        self.format = choose_format("auto", read_model_file(model_path))

    def __call__(self, messages: list[dict[str, str]]) -> str:
        from llm.prompts import render_prompt

        return render_prompt(self.format, messages).text
