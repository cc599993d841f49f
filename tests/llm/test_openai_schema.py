"""The OpenAI API's request checks (llm/openai_api/schema.py): every field of a stranger's JSON
is checked for type, size, count and range, and a refusal names the field in OpenAI's error
shape; unknown fields are ignored as OpenAI ignores them."""

from __future__ import annotations

from typing import Any

import pytest

from llm.openai_api.schema import (
    MAX_STOP_STRINGS,
    ApiError,
    parse_chat,
    parse_completion,
    parse_embedding,
)

HI = [{"role": "user", "content": "Hi"}]


def _refused(parse: Any, body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(body)
    return caught.value


def test_a_plain_request_and_every_sampling_field() -> None:
    request = parse_chat(
        {
            "model": "m.gguf",
            "messages": HI,
            "temperature": 0,
            "top_p": 0.5,
            "max_tokens": 16,
            "stop": "\n",
            "seed": 7,
            "presence_penalty": 1.5,
            "frequency_penalty": -0.5,
            "top_k": 10,
            "min_p": 0.1,
            "repeat_penalty": 1.2,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "someone",  # known, nothing to do
            "some_future_field": {"x": 1},  # unknown: ignored, as OpenAI does
        }
    )
    assert request.model == "m.gguf" and request.messages == HI
    assert request.stream and request.include_usage
    assert request.sampling == {
        "temperature": 0.0,
        "top_p": 0.5,
        "max_tokens": 16,
        "seed": 7,
        "presence_penalty": 1.5,
        "frequency_penalty": -0.5,
        "top_k": 10,
        "min_p": 0.1,
        "repeat_penalty": 1.2,
        "stop": ("\n",),
    }
    # What is left out takes the app's settings; null is "left out".
    assert parse_chat({"messages": HI, "temperature": None, "stop": None}).sampling == {}


def test_newer_and_client_specific_spellings() -> None:
    assert parse_chat({"messages": HI, "max_completion_tokens": 5}).sampling["max_tokens"] == 5
    assert parse_chat({"messages": HI, "max_tokens": 9.0}).sampling["max_tokens"] == 9
    # Any 64-bit seed maps onto llama.cpp's 31 bits, deterministically.
    assert parse_chat({"messages": HI, "seed": -1}).sampling["seed"] == 2**31 - 1
    assert parse_chat({"messages": HI, "seed": 2**40 + 3}).sampling["seed"] == 3
    assert parse_chat({"messages": HI, "top_p": 0}).sampling["top_p"] > 0


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("temperature", "hot", "must be a number, not a string"),
        ("temperature", True, "must be a number, not a boolean"),
        ("temperature", 2.5, "out of range (0 to 2)"),
        ("top_p", 1.5, "out of range"),
        ("max_tokens", 0, "out of range (1 to 1000000)"),
        ("max_tokens", 1.5, "must be an integer, not a number"),
        ("max_tokens", "10", "must be an integer, not a string"),
        ("seed", 2**64, "out of range"),
        ("presence_penalty", 3, "out of range (-2 to 2)"),
        ("frequency_penalty", [1], "must be a number, not an array"),
        ("stream", "yes", "must be a boolean"),
        ("stream_options", [], "must be an object"),
        ("stop", 5, "must be a string or an array of strings"),
        ("stop", ["a"] * (MAX_STOP_STRINGS + 1), "at most 4"),
        ("stop", [""], "1 to 256 characters"),
        ("stop", ["x" * 257], "1 to 256 characters"),
        ("stop", [None], "must hold strings only"),
        ("model", 3, "must be a string, not an integer"),
        ("model", "m" * 257, "is too long"),
        ("n", 2, "n must be 1"),
        ("tools", [{"type": "function"}], "tool calling is not supported"),
        ("logprobs", True, "not supported"),
        ("response_format", {"type": "json_object"}, "only"),
        ("top_k", -1, "out of range"),
        ("ignore_eos", 1, "must be a boolean"),
    ],
)
def test_a_wrong_field_is_a_400_naming_it(field: str, value: Any, says: str) -> None:
    error = _refused(parse_chat, {"messages": HI, field: value})
    assert error.status == 400 and error.param == field
    assert says in error.message
    body = error.body()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert body["type"] == "invalid_request_error" and body["param"] == field


def test_stream_options_need_a_stream() -> None:
    error = _refused(parse_chat, {"messages": HI, "stream_options": {"include_usage": True}})
    assert error.param == "stream_options"
    error = _refused(
        parse_chat, {"messages": HI, "stream": True, "stream_options": {"include_usage": "y"}}
    )
    assert error.param == "stream_options.include_usage"


@pytest.mark.parametrize(
    ("messages", "param", "says"),
    [
        (None, "messages", "missing required field"),
        ("Hi", "messages", "must be an array"),
        ([], "messages", "1 to 10,000 messages"),
        ([{"role": "user", "content": "x"}] * 10_001, "messages", "1 to 10,000"),
        (["Hi"], "messages[0]", "must be an object"),
        ([{"role": "tool", "content": "x"}], "messages[0].role", "'tool' is not supported"),
        ([{"role": 1, "content": "x"}], "messages[0].role", "an integer"),
        ([{"role": "user", "content": 5}], "messages[0].content", "must be a string"),
        ([{"role": "user", "content": None}], "messages[0].content", "must be a string"),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "messages[0].content[0]",
            "only text parts",
        ),
        (
            [{"role": "user", "content": "x" * 1_000_001}],
            "messages[0].content",
            "too long",
        ),
        ([{"role": "assistant", "content": "Hello"}], "messages", "the user's"),
        (
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "messages",
            "the last message must be the user's",
        ),
        (
            [{"role": "user", "content": "a", "tool_calls": [{"id": "1"}]}],
            "messages[0].tool_calls",
            "not supported",
        ),
    ],
)
def test_bad_messages_are_refused_naming_where(messages: Any, param: str, says: str) -> None:
    error = _refused(parse_chat, {"messages": messages})
    assert error.status == 400 and error.param == param
    assert says in error.message


def test_messages_become_the_page_shape() -> None:
    request = parse_chat(
        {
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
                {"role": "user", "content": "Are you there?", "name": "ada"},
                {"role": "assistant", "content": "Yes."},
                {"role": "system", "content": "Answer in English."},
                {"role": "user", "content": "Good."},
            ]
        }
    )
    assert request.messages == [
        {"role": "system", "content": "Be brief.\n\nAnswer in English."},
        {"role": "user", "content": "Hi there\n\nAre you there?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Good."},
    ]


def test_a_body_that_is_not_an_object() -> None:
    for body in ([], "x", 3, None):
        assert _refused(parse_chat, body).code == "invalid_json"


def test_completions() -> None:
    assert parse_completion({"prompt": "Once"}).prompt == "Once"
    assert parse_completion({"prompt": ["Once"], "max_tokens": 3}).sampling == {"max_tokens": 3}
    for body, param in [
        ({}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "x", "echo": True}, "echo"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": "x", "best_of": 2}, "best_of"),
        ({"prompt": "x", "temperature": "0"}, "temperature"),
    ]:
        assert _refused(parse_completion, body).param == param, body


def test_embeddings() -> None:
    request = parse_embedding({"input": "hello"})
    assert (
        request.inputs == ["hello"] and request.model == "" and request.encoding_format == "float"
    )
    assert parse_embedding({"input": ["a", "b"], "encoding_format": "base64"}).inputs == ["a", "b"]
    for body, param in [
        ({}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"input": []}, "input"),
        ({"input": ["x"] * 2049}, "input"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["x" * 100_001]}, "input[0]"),
        ({"input": ["x" * 90_000] * 23}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 64}, "dimensions"),
        ({"input": "x", "model": ["wordllama"]}, "model"),
    ]:
        assert _refused(parse_embedding, body).param == param, body


def test_the_api_settings_in_config_toml() -> None:
    from llm.config import config_from_dict
    from llm.errors import ConfigError

    config = config_from_dict(
        {"api": {"enabled": True, "cors_origins": ["http://localhost:3000", "https://[::1]:8443"]}}
    )
    assert config.api_enabled and config.api_cors_origins == (
        "http://localhost:3000",
        "https://[::1]:8443",
    )
    assert not config_from_dict({}).api_enabled
    for origins, says in [
        (["http://x.example/path"], "is not an origin"),
        (["localhost:3000"], "is not an origin"),
        (["*"], "is not an origin"),
        ("http://a", "must be a list of strings"),
    ]:
        with pytest.raises(ConfigError, match=says):
            config_from_dict({"api": {"cors_origins": origins}})
    with pytest.raises(ConfigError, match="must be true or false"):
        config_from_dict({"api": {"enabled": "yes"}})
