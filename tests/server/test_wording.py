"""Errors in the user's words (pages/wording.py) and the language of each browser
(web/language.py): the library's codes and values, worded in English and Korean."""

from __future__ import annotations

import pytest
from flask import Flask

from llm.chat_values import checked_title
from llm.config import SamplingParams
from llm.errors import ConfigError, HubNotFoundError, HubUnreachableError, LocalChatError
from llm.session import MAX_MESSAGE_CHARS, checked_system_prompt
from pages.i18n import LANGUAGES, labels
from pages.wording import error_text
from web.language import LANGUAGE_COOKIE, ROUTE, TabLabels, add_language_route

EN, KO = labels("en"), labels("ko")


def _range_error(**values: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        SamplingParams().replace(**values)
    return caught.value


def test_an_out_of_range_setting_carries_its_code_and_values() -> None:
    error = _range_error(temperature=9.0)
    # The command line keeps the library's sentence ...
    assert str(error) == "sampling.temperature = 9.0 is out of range (0 to 5)"
    # ... the pages get what to say it with.
    assert error.code == "out_of_range"
    assert error.values == {
        "field": "temperature",
        "value": 9.0,
        "min": 0.0,
        "max": 5.0,
        "min_open": False,
        "max_open": False,
    }


@pytest.mark.parametrize(
    ("values", "english", "korean"),
    [
        (
            {"temperature": 9.0},
            "Temperature must be between 0 and 5",
            "온도 값은 0에서 5 사이여야 합니다",
        ),
        (
            {"top_p": 0.0},
            "Top-p must be more than 0 and at most 1",
            "Top-p 값은 0보다 크고 1 이하여야 합니다",
        ),
        (
            {"min_p": 1.0},
            "Min-p must be at least 0 and less than 1",
            "Min-p 값은 0 이상이고 1보다 작아야 합니다",
        ),
        (
            {"seed": 2**31},
            "Seed must be between -1 and 2,147,483,647",
            "시드 값은 -1에서 2,147,483,647 사이여야 합니다",
        ),
        (
            {"max_tokens": 0},
            "Max tokens must be between 1 and 1,000,000",
            "최대 토큰 수 값은 1에서 1,000,000 사이여야 합니다",
        ),
        (
            {"repeat_penalty": 0.1},
            "Repeat penalty must be between 0.5 and 5",
            "반복 페널티 값은 0.5에서 5 사이여야 합니다",
        ),
    ],
)
def test_each_range_is_worded_in_both_languages(
    values: dict[str, float], english: str, korean: str
) -> None:
    error = _range_error(**values)
    assert error_text(error, EN) == english
    assert error_text(error, KO) == korean


def test_a_too_long_system_prompt_is_worded() -> None:
    with pytest.raises(LocalChatError) as caught:
        checked_system_prompt("x" * (MAX_MESSAGE_CHARS + 1))
    assert caught.value.code == "too_long"
    assert error_text(caught.value, EN) == (
        "System prompt is too long: 1,000,001 characters, at most 1,000,000"
    )
    assert (
        error_text(caught.value, KO)
        == "시스템 프롬프트이(가) 너무 깁니다: 1,000,001자 (최대 1,000,000자)"
    )


def test_the_hub_out_of_reach_is_said_plainly() -> None:
    error = HubUnreachableError(
        "Hugging Face can't be reached — local models still work (cannot reach "
        "https://huggingface.co: [Errno -2] Name or service not known; ...)"
    )
    assert error_text(error, EN) == "Hugging Face can't be reached — local models still work"
    assert error_text(error, KO) == (
        "Hugging Face에 연결할 수 없습니다 — 이 컴퓨터의 모델은 그대로 쓸 수 있습니다"
    )
    assert "Errno" not in error_text(error, KO)


def test_problems_without_words_of_their_own_keep_the_library_sentence() -> None:
    error = HubNotFoundError("repository a/b not found on http://hub")
    assert error.code == "hub_not_found"
    assert error_text(error, EN) == "repository a/b not found on http://hub"
    assert error_text(error, KO) == (
        "Hugging Face에서 찾을 수 없습니다 (repository a/b not found on http://hub)"
    )
    # Not LocalChat's own error, or already words (from another thread): as it is.
    assert error_text(ValueError("bad"), KO) == "bad"
    assert error_text("already worded", KO) == "already worded"
    # A raise that lacks the values its words need falls back to its sentence.
    assert error_text(LocalChatError("plain", code="out_of_range"), EN) == "plain"


def test_every_error_class_has_words_in_every_language() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    codes = {cls.code for cls in subclasses(LocalChatError)}
    assert len(codes) >= 20
    for language in LANGUAGES:
        missing = [code for code in codes if f"err_{code}" not in labels(language)]
        assert not missing, (language, missing)


def test_tab_labels_follow_the_cookie_and_accept_only_known_languages() -> None:
    tab_labels = TabLabels({lang: labels(lang) for lang in LANGUAGES}, "en")
    flask_app = Flask("t")
    with flask_app.test_request_context("/", headers={"Cookie": f"{LANGUAGE_COOKIE}=ko"}):
        assert tab_labels.from_request() == "ko"
        assert tab_labels["nav_chat"] == KO["nav_chat"]
    for bad in ("xx", "../en", "", "KO"):
        cookie = {"Cookie": f"{LANGUAGE_COOKIE}={bad}"}
        with flask_app.test_request_context("/", headers=cookie):
            assert tab_labels.from_request() == "en"  # the default, never the stranger's value
    with tab_labels.building("ko"):
        assert tab_labels["stop"] == KO["stop"]
    assert tab_labels["stop"] == EN["stop"]  # outside any request: the default


def test_the_language_route_sets_the_cookie_and_goes_back_only_to_a_page() -> None:
    flask_app = Flask("t")
    add_language_route(flask_app, LANGUAGES)
    client = flask_app.test_client()
    response = client.get(f"{ROUTE}?to=ko", headers={"Referer": "http://localhost/models"})
    assert response.status_code == 303 and response.headers["Location"] == "/models"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{LANGUAGE_COOKIE}=ko;") and "SameSite=Lax" in cookie
    for referer in ("http://evil.example/chat", "http://localhost//evil.example", "javascript:x"):
        response = client.get(f"{ROUTE}?to=en", headers={"Referer": referer})
        assert response.headers["Location"] == "/"
    response = client.get(f"{ROUTE}?to=xx")
    assert "Set-Cookie" not in response.headers  # an unknown language is not remembered


def test_a_chat_title_the_store_refuses_is_worded() -> None:
    with pytest.raises(LocalChatError) as empty:
        checked_title(" \n\t ")
    assert error_text(empty.value, EN) == "A chat title cannot be empty"
    assert error_text(empty.value, KO) == "대화 제목은 비워 둘 수 없습니다"
    with pytest.raises(LocalChatError) as long:
        checked_title("t" * 201)
    assert error_text(long.value, EN) == "The chat title is too long: 201 characters, at most 200"
    assert error_text(long.value, KO) == "대화 제목이(가) 너무 깁니다: 201자 (최대 200자)"


def test_load_settings_and_server_list_errors_are_worded_in_both_languages(tmp_path) -> None:
    """The model settings panel's refusals and a silent server, from the library's own raises."""
    import os

    from support.gguf_factory import write_scripted_model

    from llm.backend_models import BackendListing, BackendModels
    from llm.config import Backend, Config
    from llm.load_settings import check_load_settings
    from llm.model_files import read_model_file

    path = tmp_path / "m.gguf"
    write_scripted_model(path, ["Hi"], n_ctx_train=2048)
    info = read_model_file(path)
    errors = []
    for n_ctx, n_threads in ((100, 0), (1024, 10_000), ("lots", 0)):
        with pytest.raises(ConfigError) as refused:
            check_load_settings(info, n_ctx, n_threads)
        errors.append(refused.value)
    models = BackendModels(Config(backends=(Backend("lab", "http://127.0.0.1:9/v1"),)), None)
    models._listings["lab"] = BackendListing("lab", "http://127.0.0.1:9/v1", asking=True)
    models._no_answer_yet("lab")
    errors.append(models.listings()[0].error)
    english = [error_text(e, labels("en")) for e in errors]
    assert english == [
        "The context length must be between 256 and 2048 tokens for this model",
        f"Threads must be 0 (automatic) or between 1 and {os.cpu_count()}",
        "The context length must be a whole number",
        "lab did not answer within 3 s",
    ]
    korean = [error_text(e, labels("ko")) for e in errors]
    assert korean[0] == "이 모델의 컨텍스트 길이는 256에서 2048 토큰 사이여야 합니다"
    assert korean[2] == "컨텍스트 길이 값은 정수여야 합니다"
    assert korean[3] == "lab 서버가 3초 안에 답하지 않았습니다"
    assert all(k != e for k, e in zip(korean, english, strict=True))
