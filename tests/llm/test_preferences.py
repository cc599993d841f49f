"""llm.preferences: the chat format remembered per model survives a restart; bad input and
broken files give one clear error and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm.config import load_config
from llm.errors import ConfigError
from llm.preferences import Preferences


def test_format_choice_is_remembered_across_instances(tmp_path: Path) -> None:
    prefs = Preferences.in_folder(tmp_path / "data")
    assert prefs.chat_format("a.gguf") is None
    prefs.set_chat_format("a.gguf", "chatml")
    prefs.set_chat_format("b.gguf", "llama-3")
    again = Preferences.in_folder(tmp_path / "data")
    assert again.chat_format("a.gguf") == "chatml"
    assert again.chat_format("b.gguf") == "llama-3"
    again.set_chat_format("a.gguf", "auto")  # auto forgets the choice
    assert Preferences.in_folder(tmp_path / "data").chat_format("a.gguf") is None
    saved = json.loads((tmp_path / "data" / "preferences.json").read_text())
    assert saved == {"chat_formats": {"b.gguf": "llama-3"}}


@pytest.mark.parametrize(
    ("model", "fmt", "message"),
    [
        ("a.gguf", "alpaca", "must be one of auto"),
        ("../a.gguf", "chatml", "is not a model file name"),
        ("", "chatml", "is not a model file name"),
    ],
)
def test_bad_choice_is_refused_and_nothing_changes(
    tmp_path: Path, model: str, fmt: str, message: str
) -> None:
    prefs = Preferences.in_folder(tmp_path)
    prefs.set_chat_format("a.gguf", "zephyr")
    before = (tmp_path / "preferences.json").read_text()
    with pytest.raises(ConfigError, match=message):
        prefs.set_chat_format(model, fmt)
    assert (tmp_path / "preferences.json").read_text() == before
    assert prefs.chat_format("a.gguf") == "zephyr"


@pytest.mark.parametrize(
    "content", ["{not json", '{"chat_formats": {"a.gguf": "alpaca"}}', '["x"]', "\xff\xfe"]
)
def test_broken_file_is_named_in_the_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "preferences.json"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(ConfigError, match=r"preferences\.json"):
        Preferences(path)
    assert path.read_text(encoding="latin-1") == content  # left for the user to inspect


def test_unwritable_folder_gives_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    prefs = Preferences.in_folder(blocker / "data")
    with pytest.raises(ConfigError, match="cannot save preferences"):
        prefs.set_chat_format("a.gguf", "chatml")
    assert prefs.chat_format("a.gguf") is None


def test_data_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALCHAT_DATA_DIR", str(tmp_path / "mine"))
    assert load_config().data_dir == (tmp_path / "mine").resolve()
    monkeypatch.delenv("LOCALCHAT_DATA_DIR")
    assert load_config().data_dir.name == "data"


def test_the_default_system_prompt_is_remembered_and_can_be_forgotten(tmp_path: Path) -> None:
    prefs = Preferences.in_folder(tmp_path)
    assert prefs.system_prompt() is None  # none chosen: config.toml's applies
    prefs.set_chat_format("a.gguf", "chatml")
    prefs.set_system_prompt("Answer in French.")
    again = Preferences.in_folder(tmp_path)
    assert again.system_prompt() == "Answer in French."
    assert again.chat_format("a.gguf") == "chatml"  # the other choices stay
    again.set_system_prompt("")  # "no system prompt" is a choice too
    assert Preferences.in_folder(tmp_path).system_prompt() == ""
    again.set_system_prompt(None)
    assert Preferences.in_folder(tmp_path).system_prompt() is None
    with pytest.raises(ConfigError, match="too long"):
        again.set_system_prompt("x" * 1_000_001)
    assert Preferences.in_folder(tmp_path).system_prompt() is None
