"""LocalChat's engine on a real model: SmolLM2-135M-Instruct (the starter model, `real_model`),
at temperature 0 and a fixed seed, against llama-cpp-python's own chat completion.

Every expected answer here was checked on the model first: a 135M model is weak, so the tests
assert what it really does (it repeats a fact from the system prompt, and a name from the turn
before), each beside a control without that context, so they fail if the context is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from llm.config import SamplingParams
from llm.engine import Engine
from llm.model_files import choose_format, read_model_file
from llm.session import ChatSession

pytestmark = pytest.mark.timeout(180)

GREEDY = SamplingParams(temperature=0.0, seed=42, max_tokens=96)  # top-k 40, repeat 1.1, ...
N_CTX = 2048
# A conversation given as text: system prompt, user, assistant, user.
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, I am Bob."},
    {"role": "assistant", "content": "Hello Bob! How can I help you today?"},
    {"role": "user", "content": "What is my name?"},
]


@pytest.fixture(scope="module")
def engine(real_model: Path) -> Iterator[Engine]:
    """The real model in LocalChat's worker process, one for the module."""
    engine = Engine(n_ctx=N_CTX)
    engine.load(real_model)
    yield engine
    engine.close()


def _session(engine: Engine, system_prompt: str, history: list | None = None) -> ChatSession:
    return ChatSession(engine, system_prompt=system_prompt, params=GREEDY, history=history)


def _ask(session: ChatSession, text: str) -> str:
    reply = session.ask(text)
    return "".join(reply)


def test_the_prompt_and_reply_are_llama_cpp_pythons_own(engine: Engine, real_model: Path) -> None:
    """Token for token, the prompt LocalChat builds for a conversation given as text is the one
    llama-cpp-python's `create_chat_completion` evaluates with the file's template, and the
    greedy reply is the same text."""
    fmt = choose_format("auto", read_model_file(real_model))
    assert fmt.name == "gguf"  # the template stored in the file
    ours = engine.tokenize(CONVERSATION, fmt)

    llama = llama_cpp.Llama(
        str(real_model), n_ctx=N_CTX, n_threads=engine.n_threads or None, verbose=False
    )
    assert llama.chat_format == "chat_template.default"  # its handler for the file's template
    evaluated: list[list[int]] = []
    generate = llama.generate

    def recording(tokens, *args, **kwargs):  # what create_completion hands llama.cpp
        evaluated.append(list(tokens))
        return generate(tokens, *args, **kwargs)

    llama.generate = recording
    theirs = llama.create_chat_completion(
        CONVERSATION,
        temperature=GREEDY.temperature,
        seed=GREEDY.seed,
        max_tokens=GREEDY.max_tokens,
        top_k=GREEDY.top_k,
        top_p=GREEDY.top_p,
        min_p=GREEDY.min_p,
        repeat_penalty=GREEDY.repeat_penalty,
    )
    llama.close()
    assert evaluated == [ours]

    session = _session(engine, CONVERSATION[0]["content"], CONVERSATION[1:3])
    reply = session.ask(CONVERSATION[3]["content"])
    text = "".join(reply)
    expected = theirs["choices"][0]["message"]["content"]
    assert text == expected
    assert "Bob" in text  # the name from the turn given as text
    assert reply.figures.prompt_tokens == len(ours) == theirs["usage"]["prompt_tokens"]
    assert reply.figures.completion_tokens == theirs["usage"]["completion_tokens"]
    assert reply.finish_reason == theirs["choices"][0]["finish_reason"] == "stop"


def test_a_fact_in_the_system_prompt_is_answered_from_it(engine: Engine) -> None:
    question = "What is the project codename?"
    told = _ask(_session(engine, "The project codename is BLUEHERON."), question)
    assert "BLUEHERON" in told
    untold = _ask(_session(engine, "You are a helpful assistant."), question)
    assert "BLUEHERON" not in untold  # the fact came from the system prompt


def test_a_second_turn_recalls_a_name_and_evaluates_only_its_own_message(engine: Engine) -> None:
    session = _session(engine, "You are a helpful assistant.")
    first = session.ask("Hello, I am Bob.")
    list(first)
    second = session.ask("What is my name?")
    assert "Bob" in "".join(second)
    fresh = _ask(_session(engine, "You are a helpful assistant."), "What is my name?")
    assert "Bob" not in fresh  # the name came from the first turn

    # The first turn, as the model wrote it (its own tokens, kept by the engine, which may
    # differ from its text tokenized again), was not evaluated again.
    assert (
        second.figures.cached_tokens
        >= first.figures.prompt_tokens + first.figures.completion_tokens
    )
    evaluated = second.figures.prompt_tokens - second.figures.cached_tokens
    # The message ("What is my name?", 6 tokens) and the template's turn markers around it
    # (about 10); re-evaluating the first reply (30 tokens) would exceed this.
    assert evaluated <= 20, second.figures
