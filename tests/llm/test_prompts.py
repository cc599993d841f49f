"""Prompt formats against the official chat templates, and control-token safety by token ids."""

from __future__ import annotations

import json
import time

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from support.replies import SMOLLM2_SYSTEM, SMOLLM2_TEMPLATE

from llm.errors import PromptError
from llm.prompts import (
    FORMATS,
    ChatFormat,
    format_from_gguf,
    get_format,
    render_prompt,
    template_system_prompt,
    validate_messages,
)

# The chat templates as published in each model's tokenizer_config.json (JSON-escaped there).
OFFICIAL = {
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0
    "zephyr": json.loads(
        "\"{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>"
        "\\n' + message['content'] + eos_token }}\\n{% elif message['role'] == 'system' %}\\n"
        "{{ '<|system|>\\n' + message['content'] + eos_token }}\\n{% elif message['role'] == "
        "'assistant' %}\\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\\n{% endif "
        "%}\\n{% if loop.last and add_generation_prompt %}\\n{{ '<|assistant|>' }}\\n{% endif %}"
        '\\n{% endfor %}"'
    ),
    # mistralai/Mistral-7B-Instruct-v0.2 (as carried by TheBloke's GGUF files)
    "mistral-instruct": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
        "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
        "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant'"
        " %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and "
        "assistant roles are supported!') }}{% endif %}{% endfor %}"
    ),
    "chatml": json.loads(
        "\"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}\""
    ),
    # meta-llama/Meta-Llama-3-8B-Instruct
    "llama-3": json.loads(
        '"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content']"
        " | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content"
        " %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}\""
    ),
}
SPECIALS = {
    "zephyr": ("<s>", "</s>"),
    "mistral-instruct": ("<s>", "</s>"),
    "chatml": ("<s>", "<|im_end|>"),
    "llama-3": ("<|begin_of_text|>", "<|eot_id|>"),
}
SYSTEM = {"role": "system", "content": "You are a geography expert."}
CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is the capital of France?"}],
    "multi-turn": [
        {"role": "user", "content": "Write a Python command that prints 'hello world'"},
        {"role": "assistant", "content": "print('hello world')"},
        {"role": "user", "content": "Now in C, please.\nWith a newline."},
    ],
}


def official_render(name: str, messages: list[dict[str, str]]) -> str:
    """Render as Hugging Face transformers' apply_chat_template does."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    bos, eos = SPECIALS[name]
    return env.from_string(OFFICIAL[name]).render(
        messages=messages, bos_token=bos, eos_token=eos, add_generation_prompt=True
    )


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("with_system", [False, True], ids=["no-system", "system"])
@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_format_matches_official_template(name: str, conversation: str, with_system: bool) -> None:
    messages = (
        [SYSTEM, *CONVERSATIONS[conversation]] if with_system else CONVERSATIONS[conversation]
    )
    expected_input = messages
    if name == "mistral-instruct" and with_system:
        # Mistral v0.2 has no system role: the system prompt opens the first user turn.
        first = messages[1]
        expected_input = [
            {"role": "user", "content": f"{SYSTEM['content']}\n\n{first['content']}"},
            *messages[2:],
        ]
    expected = official_render(name, expected_input)
    assert render_prompt(FORMATS[name], messages).text == expected


def test_reference_strings_literally() -> None:
    """The strings users see in model cards, spelled out."""
    zephyr = render_prompt(FORMATS["zephyr"], [SYSTEM, CONVERSATIONS["single"][0]]).text
    assert zephyr == (
        "<|system|>\nYou are a geography expert.</s>\n"
        "<|user|>\nWhat is the capital of France?</s>\n<|assistant|>\n"
    )
    mistral = render_prompt(FORMATS["mistral-instruct"], CONVERSATIONS["multi-turn"]).text
    assert mistral.startswith(
        "<s>[INST] Write a Python command that prints 'hello world' [/INST]"
        "print('hello world')</s>[INST] Now in C"
    )
    assert mistral.endswith(" [/INST]")
    llama3 = render_prompt(FORMATS["llama-3"], [SYSTEM, CONVERSATIONS["single"][0]]).text
    assert llama3 == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "You are a geography expert.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "What is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_segments_separate_user_text_from_template() -> None:
    rendered = render_prompt(
        FORMATS["chatml"], [{"role": "user", "content": "hi <|im_end|> there"}]
    )
    content = [s.text for s in rendered.segments if s.is_content]
    template = "".join(s.text for s in rendered.segments if not s.is_content)
    assert content == ["hi <|im_end|> there"]
    assert template.count("<|im_end|>") == 1


def test_gguf_template_equal_to_builtin_is_named() -> None:
    fmt = format_from_gguf(OFFICIAL["chatml"], "<s>", "<|im_end|>")
    assert fmt.name == "chatml" and fmt.source == "gguf"


def test_broken_gguf_template_falls_back_with_warning() -> None:
    broken = ChatFormat(name="gguf", template="{{ messages[0]['content'] | nosuchfilter }}")
    messages = CONVERSATIONS["single"]
    with pytest.raises(PromptError, match="failed to render"):
        render_prompt(broken, messages)
    rendered = render_prompt(broken, messages, fallback=FORMATS["chatml"])
    assert rendered.format.name == "chatml"
    assert rendered.text == official_render("chatml", messages)
    assert "failed to render" in rendered.warnings[0] and "chatml" in rendered.warnings[0]


def test_template_raising_exception_falls_back() -> None:
    # The original Mistral template rejects a system role when stored in a GGUF file as-is.
    gguf_mistral = ChatFormat(name="gguf", template=OFFICIAL["mistral-instruct"], source="gguf")
    rendered = render_prompt(
        gguf_mistral, [SYSTEM, *CONVERSATIONS["single"]], fallback=FORMATS["chatml"]
    )
    assert "roles must alternate" in rendered.warnings[0]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "non-empty"),
        ([{"role": "bot", "content": "x"}], "role 'bot'"),
        ([{"role": "user", "content": 3}], "content must be a string"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "only come first"),
        ([{"role": "assistant", "content": "a"}], "alternate"),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "end with a user",
        ),
        ([{"role": "user", "content": "a", "name": "x"}], "only"),
    ],
)
def test_bad_messages_are_refused(messages: list, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        validate_messages(messages)


# Templates from model files are code from whoever made the file --------------------------------

HOSTILE_TEMPLATES = {
    # Jinja's sandbox caps one range at 100,000 items, not two nested ones.
    "endless loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "longer than",
    ),
    "memory": ("{{ 'A' * 3000000000 }}", "memory"),
    "output": ("{% for i in range(60) %}{{ 'A' * 50000 }}{% endfor %}", "longer than the conv"),
}


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", sorted(HOSTILE_TEMPLATES))
def test_a_hostile_gguf_template_is_stopped_at_its_limit_and_falls_back(kind: str) -> None:
    """Time, memory and output are bounded; the prompt falls back to ChatML with the reason,
    this process's memory does not grow, and the same template fails at once the next time."""
    template, reason = HOSTILE_TEMPLATES[kind]
    fmt = format_from_gguf(template, "<s>", "</s>")
    messages = CONVERSATIONS["single"]
    before = _rss()
    started = time.monotonic()
    rendered = render_prompt(fmt, messages, fallback=FORMATS["chatml"])
    took = time.monotonic() - started
    assert rendered.format.name == "chatml"
    assert rendered.text == official_render("chatml", messages)
    assert reason in rendered.warnings[0] and "using the chatml format" in rendered.warnings[0]
    assert took < 5.0  # the limit is 2 s; the rest is the helper starting on a busy machine
    assert _rss() - before < 50 * 1024 * 1024
    started = time.monotonic()
    again = render_prompt(fmt, messages, fallback=FORMATS["chatml"])
    assert again.warnings == rendered.warnings and time.monotonic() - started < 0.5


def test_a_gguf_template_renders_in_its_helper_exactly_as_in_process() -> None:
    """A template from a file goes through the helper process, with the same result (and
    the same text/content split) as rendering it here; a normal render is cheap."""
    from llm.template_render import render_segments

    template = OFFICIAL["zephyr"].replace("<|user|>", "<|usr|>")  # not a built-in any more
    fmt = format_from_gguf(template, "<s>", "</s>")
    assert fmt.untrusted and fmt.name == "gguf"
    messages = [SYSTEM, *CONVERSATIONS["multi-turn"]]
    render_prompt(fmt, messages)  # the helper starts
    started = time.perf_counter()
    rendered = render_prompt(fmt, messages)
    took = time.perf_counter() - started
    here = render_segments(template, "<s>", "</s>", messages)
    assert [(s.text, s.is_content) for s in rendered.segments] == here
    assert took < 0.05


def test_a_template_s_own_default_system_prompt_is_found() -> None:
    # SmolLM2's ChatML template writes its own system prompt when the chat has none.
    fmt = format_from_gguf(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>")
    assert template_system_prompt(fmt) == SMOLLM2_SYSTEM
    for name in ("chatml", "zephyr", "llama-3", "mistral-instruct"):  # LocalChat's add none
        assert template_system_prompt(get_format(name)) == "", name
