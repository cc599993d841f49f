"""`python main.py` flags and settings errors, before any server starts (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import run_main


def test_help_lists_the_flags(project_env: dict[str, str], tmp_path: Path) -> None:
    result = run_main(["--help"], project_env, tmp_path)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--models-dir", "--model", "--config"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--model", "nope.gguf"], "", "error: model not found: 'nope.gguf' is not a file in"),
        (["--model", "../tinyllama-scripted.gguf"], "", "error: model not found: no file at"),
        (["--port", "70000"], "", "error: app.port = 70000 is out of range"),
        ([], '[app]\nlanguage = "fr"\n', "error: app.language = 'fr' must be 'en' or 'ko'"),
        ([], "[app]\ncolour = 1\n", "error: unknown key app.colour"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    args: list[str],
    config: str,
    message: str,
    project_env: dict[str, str],
    models_dir: Path,
    tmp_path: Path,
) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(config)
    env = {**project_env, "LOCALCHAT_CONFIG": str(config_path)}
    result = run_main(["--models-dir", str(models_dir), *args], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_broken_model_named_on_the_command_line_is_refused(
    project_env: dict[str, str], models_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "cut.gguf").write_bytes((models_dir / "tinyllama-scripted.gguf").read_bytes()[:5000])
    config_path = tmp_path / "config.toml"
    config_path.write_text("")
    env = {**project_env, "LOCALCHAT_CONFIG": str(config_path)}
    result = run_main(["--models-dir", str(broken), "--model", "cut.gguf"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cut.gguf: truncated"), result.stderr
