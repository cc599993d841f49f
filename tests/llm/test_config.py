"""config.toml: defaults, overrides, and clear refusals of unknown keys and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.config import DEFAULT_CONFIG_PATH, load_config
from llm.errors import ConfigError


def test_project_config_loads_with_expected_defaults() -> None:
    config = load_config(DEFAULT_CONFIG_PATH)
    assert config.host == "127.0.0.1" and config.port == 5000
    assert config.models_dir == DEFAULT_CONFIG_PATH.parent / "models"
    assert config.sampling.max_tokens == 512 and config.n_batch == 512
    assert config.system_prompt == ""  # no system prompt of LocalChat's own


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[inference]\ntemprature = 0.5\n", "unknown key inference.temprature"),
        ("[nosuch]\nx = 1\n", r"unknown section \[nosuch\]"),
        ("[inference]\ntemperature = 9.0\n", r"inference.temperature = 9.0 is out of range"),
        ('[inference]\ntop_k = "40"\n', "inference.top_k = '40' must be an integer"),
        ("[inference]\nn_ctx = true\n", "inference.n_ctx = True must be an integer"),
        ('[app]\nlanguage = "fr"\n', "must be 'en' or 'ko'"),
        ('[models]\nformat = "alpaca"\n', "must be one of auto"),
        ("[app\nport = 1\n", "not valid TOML"),
        ("[app]\nmax_upload_mb = 0\n", r"app.max_upload_mb = 0 is out of range \(1 to 4096\)"),
        ('[app]\nallowed_hosts = "lan"\n', "must be a list of strings"),
        ("[app]\nallowed_hosts = [1]\n", "must be a list of strings"),
        ('[app]\nallowed_hosts = ["http://chat.lan:80"]\n', "is not a host name or address"),
        ('[documents]\nroots = "~/Documents"\n', "documents.roots = .* must be a list of strings"),
        ("[documents]\nroots = [1]\n", "must be a list of strings"),
        ('[documents]\nroots = [""]\n', 'documents.roots: "" is not a folder'),
        ('[documents]\nroot = ["/srv"]\n', "unknown key documents.root"),
    ],
)
def test_bad_config_is_refused_with_the_key_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_relative_models_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[models]\ndir = "my-models"\n[inference]\ntemperature = 1\n')
    config = load_config(path)
    assert config.models_dir == tmp_path / "my-models"
    assert config.sampling.temperature == 1.0


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[app]\nport = 6000\n")
    monkeypatch.setenv("LOCALCHAT_CONFIG", str(path))
    monkeypatch.setenv("LOCALCHAT_MODELS_DIR", str(tmp_path / "m"))
    config = load_config()
    assert config.port == 6000 and config.models_dir == tmp_path / "m"
    monkeypatch.setenv("LOCALCHAT_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config()


def test_allowed_hosts_and_upload_limit(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[app]\nallowed_hosts = ["chat.lan", "192.168.1.20"]\nmax_upload_mb = 8\n')
    config = load_config(path)
    assert config.allowed_hosts == ("chat.lan", "192.168.1.20") and config.max_upload_mb == 8


def test_documents_roots_are_folders_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[documents]\nroots = ["shared", "/srv/docs", "~/Documents"]\n')
    config = load_config(path)
    assert config.documents_roots == (
        tmp_path / "shared",
        Path("/srv/docs"),
        Path("~/Documents").expanduser().resolve(),
    )
    assert config.config_file == path  # never indexed (llm.documents.Library.checked_paths)
    assert load_config(DEFAULT_CONFIG_PATH).documents_roots == ()
