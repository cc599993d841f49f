"""Context length and threads per model (llm/load_settings.py): the bounds and checks of a
stranger's values, the preferences file that remembers them, the engine loading a real
llama.cpp model with them (llama.cpp's own n_ctx and thread count), a reload that waits for a
reply, and `python -m llm models settings`."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.commands import run_llm
from support.gguf_factory import write_scripted_model
from support.replies import LONG_SCRIPT

from llm.config import Config
from llm.engine import Engine
from llm.errors import ConfigError, InsufficientMemoryError
from llm.load_settings import (
    LoadSettings,
    check_load_settings,
    config_defaults,
    load_bounds,
    memory_at,
    needs_reload,
    settings_for,
)
from llm.model_files import read_model_file
from llm.preferences import Preferences
from llm.session import ChatSession

CPUS = os.cpu_count() or 1


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on 2,048 tokens that replies LONG_SCRIPT."""
    path = tmp_path_factory.mktemp("load-settings") / "small.gguf"
    write_scripted_model(
        path, LONG_SCRIPT, name="Small", n_embd=256, n_layer=4, n_ff=512, n_ctx_train=2048
    )
    return path


# --- bounds and checks -------------------------------------------------------------------------
def test_bounds_come_from_the_model_and_the_machine(small: Path) -> None:
    bounds = load_bounds(read_model_file(small))
    assert (bounds.min_ctx, bounds.max_ctx, bounds.trained_ctx) == (256, 2048, 2048)
    assert bounds.max_threads == CPUS
    assert 1 <= bounds.auto_threads <= CPUS


@pytest.mark.parametrize(
    ("n_ctx", "n_threads", "code"),
    [
        (255, 1, "context_out_of_range"),
        (2049, 1, "context_out_of_range"),
        (0, 1, "context_out_of_range"),
        (-4096, 1, "context_out_of_range"),
        (10**12, 1, "context_out_of_range"),
        ("1000000000000", 1, "not_a_whole_number"),  # more digits than any context
        ("4096; rm -rf /", 1, "not_a_whole_number"),
        ("", 1, "not_a_whole_number"),
        (None, 1, "not_a_whole_number"),
        (True, 1, "not_a_whole_number"),
        ([1024], 1, "not_a_whole_number"),
        ({"n": 1}, 1, "not_a_whole_number"),
        (1024.5, 1, "not_a_whole_number"),
        (float("nan"), 1, "not_a_whole_number"),
        (float("inf"), 1, "not_a_whole_number"),
        (1024, -1, "threads_out_of_range"),
        (1024, CPUS + 1, "threads_out_of_range"),
        (1024, 2.5, "not_a_whole_number"),
        (1024, "two", "not_a_whole_number"),
    ],
)
def test_a_strangers_values_are_refused_with_a_code(
    small: Path, n_ctx: Any, n_threads: Any, code: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_load_settings(read_model_file(small), n_ctx, n_threads)
    assert refused.value.code == code


def test_good_values_in_the_shapes_a_page_sends(small: Path) -> None:
    info = read_model_file(small)
    assert check_load_settings(info, 256, 0) == LoadSettings(256, 0)
    assert check_load_settings(info, 2048.0, CPUS) == LoadSettings(2048, CPUS)
    assert check_load_settings(info, " 1024 ", "1") == LoadSettings(1024, 1)


def test_the_kv_cache_estimate_grows_with_the_context(small: Path) -> None:
    info = read_model_file(small)
    low, high = memory_at(info, 256), memory_at(info, 2048)
    assert high.needed.kv_cache == 8 * low.needed.kv_cache > 0
    assert high.needed.total - low.needed.total == high.needed.kv_cache - low.needed.kv_cache
    assert low.verdict == "fits"


# --- remembered -------------------------------------------------------------------------------
def test_settings_are_remembered_per_model_file(small: Path, tmp_path: Path) -> None:
    info = read_model_file(small)
    prefs = Preferences.in_folder(tmp_path)
    defaults = config_defaults(Config(n_ctx=4096, n_threads=0))
    assert settings_for(info, defaults, prefs) == LoadSettings(2048, 0)  # capped by the model
    prefs.set_load_settings("small.gguf", LoadSettings(512, 1))
    prefs.set_chat_format("small.gguf", "chatml")
    again = Preferences.in_folder(tmp_path)  # the next run reads the file
    assert settings_for(info, defaults, again) == LoadSettings(512, 1)
    assert again.chat_format("small.gguf") == "chatml"
    assert again.load_settings("other.gguf") == {}
    again.set_load_settings("small.gguf", None)
    assert settings_for(info, defaults, Preferences.in_folder(tmp_path)) == LoadSettings(2048, 0)


def test_a_hand_edited_file_with_bad_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "preferences.json"
    for bad in (
        {"load_settings": {"m.gguf": {"n_ctx": 10}}},
        {"load_settings": {"m.gguf": {"n_ctx": "4096"}}},
        {"load_settings": {"m.gguf": {"n_threads": -1}}},
        {"load_settings": {"m.gguf": {"rope": 1}}},
        {"load_settings": ["m.gguf"]},
    ):
        path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(ConfigError, match="load_settings"):
            Preferences(path)


def test_a_bad_name_or_value_changes_nothing(tmp_path: Path) -> None:
    prefs = Preferences.in_folder(tmp_path)
    prefs.set_load_settings("m.gguf", LoadSettings(1024, 1))
    for name in ("", "../m.gguf", "a/b.gguf"):
        with pytest.raises(ConfigError):
            prefs.set_load_settings(name, LoadSettings(1024, 1))
    with pytest.raises(ConfigError):
        prefs.set_load_settings("m.gguf", LoadSettings(10, 1))
    assert Preferences.in_folder(tmp_path).load_settings("m.gguf") == {
        "n_ctx": 1024,
        "n_threads": 1,
    }


# --- the engine: real llama.cpp ---------------------------------------------------------------
def test_the_engine_loads_each_model_with_its_own_settings(small: Path, tmp_path: Path) -> None:
    prefs = Preferences.in_folder(tmp_path)
    engine = Engine(n_ctx=4096, n_threads=0, prefs=prefs)
    try:
        default = engine.load(small)
        assert default.n_ctx == 2048  # config's 4096, capped by the model's training context
        assert default.settings == LoadSettings(2048, 0)
        threads = 1 if CPUS == 1 else 2
        prefs.set_load_settings("small.gguf", LoadSettings(512, threads))
        assert needs_reload(engine.loaded.settings, engine.settings_for(default.info))
        chosen = engine.load(small)  # the same file, other settings: loaded again
        # What llama.cpp itself reports in the worker process.
        assert (chosen.n_ctx, chosen.n_threads) == (512, threads)
        assert engine.load(small) is chosen  # nothing changed: reused
        prefs.set_load_settings("small.gguf", LoadSettings(768, 1))
        assert (engine.load(small).n_ctx, engine.loaded.n_threads) == (768, 1)
    finally:
        engine.close()


def test_a_reload_waits_for_the_reply_being_written(small: Path, tmp_path: Path) -> None:
    prefs = Preferences.in_folder(tmp_path)
    engine = Engine(n_ctx=1024, n_threads=1, prefs=prefs)
    try:
        engine.load(small)
        session = ChatSession(engine, chat_format="chatml")
        reply = session.ask("Write", max_tokens=len(LONG_SCRIPT) + 8)
        pieces = iter(reply)
        first = next(pieces)  # the reply is being written
        prefs.set_load_settings("small.gguf", LoadSettings(512, 1))
        loaded: list[Any] = []
        loader = threading.Thread(target=lambda: loaded.append(engine.load(small)))
        loader.start()
        loader.join(timeout=0.5)
        assert loader.is_alive() and not loaded  # waiting its turn
        text = first + "".join(pieces)
        loader.join(timeout=60)
        assert reply.finish_reason == "stop"
        assert text == "".join(LONG_SCRIPT).strip()  # the whole reply, not cut
        assert loaded and loaded[0].n_ctx == 512
    finally:
        engine.close()


def test_the_memory_check_takes_the_chosen_context(tmp_path: Path) -> None:
    # A model whose KV cache at its full training context needs more than all this RAM.
    total = psutil.virtual_memory().total
    per_layer = 4 * 1_048_576 * 64  # K and V, f16, 64 wide, 1,048,576 tokens
    path = tmp_path / "deep.gguf"
    write_scripted_model(path, ["Deep"], n_layer=total // per_layer + 2, n_ctx_train=1_048_576)
    prefs = Preferences.in_folder(tmp_path)
    engine = Engine(n_ctx=1024, n_threads=1, prefs=prefs)
    try:
        prefs.set_load_settings("deep.gguf", LoadSettings(1_048_576, 1))
        with pytest.raises(InsufficientMemoryError, match="for 1048576 tokens"):
            engine.load(path)
        assert engine.loaded is None
        prefs.set_load_settings("deep.gguf", None)  # config's 1,024 tokens fit
        assert engine.load(path).n_ctx == 1024
    finally:
        engine.close()


# --- the command line -------------------------------------------------------------------------
def test_the_command_line_shows_sets_refuses_and_resets(
    small: Path, project_env: dict[str, str]
) -> None:
    folder = ["--models-dir", str(small.parent)]
    shown = run_llm("models", "settings", "small", "--json", *folder, env=project_env)
    assert shown.returncode == 0, shown.stderr
    row = json.loads(shown.stdout)
    assert (row["n_ctx"], row["n_threads"], row["chosen"]) == (2048, 0, False)
    assert row["bounds"]["n_ctx"] == [256, 2048] and row["bounds"]["n_threads"] == [1, CPUS]
    assert row["kv_cache_bytes"] == read_model_file(small).kv_cache_bytes(2048)

    set_ = run_llm(
        "models",
        "settings",
        "small.gguf",
        "--ctx",
        "512",
        "--threads",
        "1",
        *folder,
        env=project_env,
    )
    assert set_.returncode == 0, set_.stderr
    assert "context: 512 tokens" in set_.stdout and "threads: 1" in set_.stdout

    bad = run_llm("models", "settings", "small", "--ctx", "4096", *folder, env=project_env)
    assert bad.returncode == 2
    assert "256 to 2,048" in bad.stderr
    bad = run_llm("models", "settings", "small", "--threads", "999", *folder, env=project_env)
    assert bad.returncode == 2 and "threads 999" in bad.stderr
    row = json.loads(
        run_llm("models", "settings", "small", "--json", *folder, env=project_env).stdout
    )
    assert (row["n_ctx"], row["n_threads"], row["chosen"]) == (512, 1, True)  # unchanged

    reset = run_llm("models", "settings", "small", "--reset", "--json", *folder, env=project_env)
    assert json.loads(reset.stdout)["chosen"] is False
    missing = run_llm("models", "settings", "../etc/passwd", *folder, env=project_env)
    assert missing.returncode == 2
    listed = run_llm("models", *folder, env=project_env)  # the folder listing still works
    assert listed.returncode == 0 and "small.gguf" in listed.stdout
