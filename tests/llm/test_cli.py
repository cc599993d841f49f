"""`python -m llm` end to end in a subprocess: models, render, ask, and one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.commands import run_llm
from support.gguf_factory import write_html
from support.replies import REPLY

from llm.prompts import FORMATS, render_prompt


def test_models_lists_header_facts(models_dir: Path, project_env: dict[str, str]) -> None:
    (models_dir / "half.gguf.incomplete").write_bytes(b"GGUF")
    result = run_llm("--models-dir", str(models_dir), "models", "--json", env=project_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["file_name"]: row for row in data["models"]}
    assert set(rows) == {"chatml-scripted.gguf", "tinyllama-scripted.gguf"}
    tiny = rows["tinyllama-scripted.gguf"]
    assert tiny["name"] == "TinyLlama Scripted" and tiny["architecture"] == "llama"
    assert tiny["file_type"] == "F32" and tiny["context_length"] == 4096
    assert tiny["parameter_count"] > 0 and tiny["size_bytes"] > 0
    assert tiny["chat_format"] == "zephyr"  # guessed from the name
    assert rows["chatml-scripted.gguf"]["chat_format"] == "chatml"  # template in the file
    text = run_llm("--models-dir", str(models_dir), "models", env=project_env).stdout
    assert "tinyllama-scripted.gguf" in text and "format zephyr" in text


def test_render_prints_the_exact_prompt(
    models_dir: Path, project_env: dict[str, str], tmp_path: Path
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Write a Python command that prints 'hello world'"},
        {"role": "assistant", "content": "print('hello world')"},
        {"role": "user", "content": "Thanks!"},
    ]
    file = tmp_path / "messages.json"
    file.write_text(json.dumps(messages))
    base = ["--models-dir", str(models_dir), "render", "--messages", str(file)]
    auto = run_llm(*base, "--model", "tinyllama-scripted.gguf", env=project_env)
    assert auto.returncode == 0, auto.stderr
    assert auto.stdout == render_prompt(FORMATS["zephyr"], messages).text
    mistral = run_llm(
        *base, "--model", "tinyllama-scripted", "--format", "mistral-instruct", env=project_env
    )
    assert mistral.stdout == (
        "<s>[INST] Be brief.\n\nWrite a Python command that prints 'hello world' [/INST]"
        "print('hello world')</s>[INST] Thanks! [/INST]"
    )
    gguf = run_llm(*base, "--model", "chatml-scripted.gguf", env=project_env)
    assert gguf.stdout.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_ask_streams_reply_and_prints_figures(
    models_dir: Path, project_env: dict[str, str]
) -> None:
    result = run_llm(
        "--models-dir",
        str(models_dir),
        "ask",
        "--model",
        "tinyllama-scripted.gguf",
        "--max-tokens",
        "64",
        "--temperature",
        "1.2",
        "--seed",
        "7",
        "--system",
        "Be brief.",
        "What is the capital of France?",
        env=project_env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == REPLY + "\n"
    figures = result.stderr.strip().splitlines()[-1]
    assert figures.startswith("prompt ") and "first token" in figures and "tokens/s" in figures
    assert f"{len(REPLY.split()) + 1} tokens at" in figures  # 7 pieces, "." is its own token


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "--model", "nope.gguf", "hi"], "model not found: 'nope.gguf'"),
        (["ask", "--model", "login.gguf", "hi"], "not a GGUF file: starts with '<!DOCTYPE html>'"),
        (
            ["render", "--model", "tinyllama-scripted.gguf", "--messages", "bad.json"],
            "not valid JSON",
        ),
        (
            ["render", "--model", "tinyllama-scripted.gguf", "--messages", "roles.json"],
            "role 'robot'",
        ),
        (["ask", "--model", "tinyllama-scripted.gguf", "--temperature", "-1", "hi"], "temperature"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    models_dir: Path, project_env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    write_html(models_dir / "login.gguf")
    (tmp_path / "bad.json").write_text("[{")
    (tmp_path / "roles.json").write_text('[{"role": "robot", "content": "x"}]')
    try:
        result = subprocess.run(
            [sys.executable, "-m", "llm", "--models-dir", str(models_dir), *args],
            capture_output=True,
            text=True,
            env=project_env,
            cwd=tmp_path,
            timeout=60,
        )
    finally:
        (models_dir / "login.gguf").unlink()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_bad_config_key(project_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[inference]\ntemprature = 0.2\n")
    result = run_llm("--config", str(config), "models", env=project_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: unknown key inference.temprature in config (known: n_ctx, n_threads, n_batch, "
        "system_prompt, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed)"
    )


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (command path, its parser) below `parser`, at every level."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _required_args(parser: argparse.ArgumentParser) -> list[str]:
    """The least a command needs to parse: a value for each positional and required option."""
    args: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings and action.nargs not in ("?", "*"):
            args.append("x")
        elif action.required:
            args += [action.option_strings[0], "x"]
    return args


def test_global_flags_work_before_and_after_every_command() -> None:
    from llm.cli import GLOBAL_FLAGS, _parser

    parser = _parser()
    commands = list(_commands(parser))
    assert {"models", "ask", "starter", "download", "backends"} <= {p[0] for p, _ in commands}
    flags = [part for i, flag in enumerate(GLOBAL_FLAGS) for part in (flag, f"value-{i}")]
    expected = {"config": "value-0", "models_dir": "value-1", "data_dir": "value-2"}
    for path, sub in commands:
        needs = (
            _required_args(sub)
            if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
            else []
        )
        for argv in ([*flags, *path, *needs], [*path, *needs, *flags]):
            args = vars(parser.parse_args(argv))
            assert {k: args[k] for k in expected} == expected, argv
        # A flag given only before the command is not reset by the command's own copy.
        args = parser.parse_args(["--models-dir", "before", *path, *needs])
        assert args.models_dir == "before" and args.data_dir is None, path
        # After the command wins over before it, as later flags do.
        args = parser.parse_args(["--models-dir", "before", *path, *needs, "--models-dir", "after"])
        assert args.models_dir == "after", path


def test_models_dir_after_the_command(models_dir: Path, project_env: dict[str, str]) -> None:
    before = run_llm("--models-dir", str(models_dir), "models", "--json", env=project_env)
    after = run_llm("models", "--json", "--models-dir", str(models_dir), env=project_env)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert json.loads(after.stdout)["models_dir"] == str(models_dir)


def _ask(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_llm("ask", "--models-dir", str(folder), *args, "--max-tokens", "16", "Hi", env=env)


def test_ask_without_a_model_uses_the_default_or_the_only_one(
    scripted_model: Path, project_env: dict[str, str], tmp_path: Path
) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "only-scripted.gguf").symlink_to(scripted_model)
    write_html(one / "login-page.gguf")  # listed, unusable: not a choice
    result = _ask(one, project_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == REPLY + "\n"

    two = tmp_path / "two"
    two.mkdir()
    for name in ("first-scripted.gguf", "second-scripted.gguf"):
        (two / name).symlink_to(scripted_model)
    result = _ask(two, project_env)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: which model? {two} has 2 models (first-scripted.gguf, second-scripted.gguf): "
        f"name one, or set [models] default in config.toml\n"
    )
    config = tmp_path / "config.toml"
    config.write_text('[models]\ndefault = "second-scripted.gguf"\n')
    result = _ask(two, project_env, "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "saved in chat" in result.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    result = _ask(empty, project_env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no model in {empty}: python -m llm starter gets")


def test_a_model_name_matching_no_file_suggests_the_closest(
    models_dir: Path, project_env: dict[str, str]
) -> None:
    result = _ask(models_dir, project_env, "--model", "tinyllama")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("(did you mean tinyllama-scripted.gguf?)")
