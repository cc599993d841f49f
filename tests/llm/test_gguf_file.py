"""GGUF header reading: model facts without loading weights, and precise reasons for bad files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.gguf_factory import (
    write_empty,
    write_html,
    write_random,
    write_repeated_vocab,
    write_truncated,
    write_wrong_version,
)

from llm.errors import ModelFileError
from llm.gguf_file import read_gguf_header
from llm.model_files import read_model_file, resolve_model, scan_models


def test_header_facts(scripted_model: Path) -> None:
    info = read_gguf_header(scripted_model)
    assert info.name == "TinyLlama Scripted"
    assert info.architecture == "llama"
    assert info.file_type == "F32"
    assert info.context_length == 4096
    assert info.n_layer == 1 and info.n_embd == 64
    assert info.size_bytes == scripted_model.stat().st_size
    # token_embd + output (vocab x 64) + one block of 64x64 / 64x128 weights + 3 norms
    vocab = info.vocab_size
    expected = 2 * vocab * 64 + 4 * 64 * 64 + 3 * 64 * 128 + 3 * 64
    assert info.parameter_count == expected
    assert info.bos_token == "<s>" and info.eos_token == "</s>"
    assert info.chat_template is None


@pytest.mark.parametrize(
    ("writer", "expected"),
    [
        (lambda p, src: write_empty(p), r"empty file \(0 bytes\)"),
        (lambda p, src: write_html(p), "not a GGUF file: starts with '<!DOCTYPE html>'"),
        (lambda p, src: write_random(p), "not a GGUF file: starts with"),
        (lambda p, src: write_truncated(p, src, 0.5), r"truncated: \d+\.\d KB of \d+\.\d KB"),
        (lambda p, src: write_truncated(p, src, 0.001), "truncated: the header ends early"),
        (lambda p, src: write_wrong_version(p, src, 99), "unsupported GGUF version 99"),
        (lambda p, src: write_repeated_vocab(p), "token 'Hello' appears twice"),
    ],
    ids=["empty", "html", "random", "truncated", "truncated-header", "version", "repeated-vocab"],
)
def test_corrupt_files_give_precise_errors(
    tmp_path: Path, scripted_model: Path, writer, expected: str
) -> None:
    path = tmp_path / "bad.gguf"
    writer(path, scripted_model)
    with pytest.raises(ModelFileError, match=expected):
        read_gguf_header(path)


def test_repeated_vocab_would_abort_llama_cpp(tmp_path: Path) -> None:
    """Why the header check exists: llama.cpp kills the whole process on this file."""
    path = tmp_path / "dup.gguf"
    write_repeated_vocab(path)
    code = f"import llama_cpp; llama_cpp.Llama({str(path)!r}, verbose=False)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode < 0  # killed by a signal (SIGABRT), not a Python exception


def test_scan_lists_models_and_skips_partial_downloads(
    tmp_path: Path, scripted_model: Path
) -> None:
    (tmp_path / "good.gguf").write_bytes(scripted_model.read_bytes())
    (tmp_path / "downloading.gguf.incomplete").write_bytes(b"GGUF")
    (tmp_path / "other.gguf.part").write_bytes(b"GGUF")
    write_html(tmp_path / "login-page.gguf")
    entries = {e.file_name: e for e in scan_models(tmp_path)}
    assert set(entries) == {"good.gguf", "login-page.gguf"}
    assert entries["good.gguf"].chat_format == "zephyr"  # guessed from "TinyLlama"
    assert entries["login-page.gguf"].info is None
    assert "not a GGUF file" in entries["login-page.gguf"].error


def test_names_never_escape_the_models_folder(tmp_path: Path, scripted_model: Path) -> None:
    """A name typed in the UI or CLI is a file name of the folder, nothing else; a link the
    user put in the folder is theirs and is followed (docs/SECURITY.md)."""
    models = tmp_path / "models"
    models.mkdir()
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(scripted_model.read_bytes())
    (models / "link.gguf").symlink_to(outside)
    (models / "ok.gguf").write_bytes(scripted_model.read_bytes())
    assert resolve_model("ok.gguf", models, allow_paths=False) == models / "ok.gguf"
    assert resolve_model("ok", models, allow_paths=False) == models / "ok.gguf"
    assert resolve_model("link.gguf", models, allow_paths=False) == models / "link.gguf"
    assert resolve_model("link", models, allow_paths=False) == models / "link.gguf"
    for name in ("../secret.gguf", str(outside), "..", "sub/../../secret.gguf", "~/secret.gguf"):
        with pytest.raises(ModelFileError):
            resolve_model(name, models, allow_paths=False)
    with pytest.raises(ModelFileError, match="not a file in"):
        resolve_model("missing.gguf", models)
    with pytest.raises(ModelFileError, match="model not found"):
        resolve_model("x" * 100_000, models, allow_paths=False)  # no OSError: name too long


def _folder_of_odd_entries(folder: Path, elsewhere: Path, model: Path) -> None:
    """A models folder with every kind of entry a user or a download can leave."""
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "kept-elsewhere.gguf").write_bytes(model.read_bytes())
    (folder / "plain.gguf").write_bytes(model.read_bytes())
    (folder / "linked.gguf").symlink_to(elsewhere / "kept-elsewhere.gguf")  # another app's file
    (folder / "relative.gguf").symlink_to(Path("..") / elsewhere.name / "kept-elsewhere.gguf")
    (folder / "chain.gguf").symlink_to(folder / "linked.gguf")
    (folder / "dangling.gguf").symlink_to(elsewhere / "deleted.gguf")
    (folder / "loop.gguf").symlink_to(folder / "loop.gguf")
    (folder / "dir.gguf").mkdir()
    (folder / "to-dir.gguf").symlink_to(elsewhere)
    (folder / "half.gguf.part").write_bytes(b"GGUF")
    (folder / "half.gguf.incomplete").write_bytes(b"GGUF")
    (folder / "notes.txt").write_text("not a model")
    (folder / ".hidden.gguf").write_bytes(model.read_bytes())
    (folder / "UPPER.GGUF").write_bytes(model.read_bytes())


def test_listing_and_loading_agree_both_ways(tmp_path: Path, scripted_model: Path) -> None:
    models = tmp_path / "models"
    _folder_of_odd_entries(models, tmp_path / "elsewhere", scripted_model)
    listed = {entry.file_name for entry in scan_models(models)}
    assert listed == {".hidden.gguf", "chain.gguf", "linked.gguf", "plain.gguf", "relative.gguf"}
    # Everything listed loads by the name shown, with or without ".gguf" ...
    for name in listed:
        assert resolve_model(name, models, allow_paths=False) == models / name
        assert resolve_model(name.removesuffix(".gguf"), models, allow_paths=False) == models / name
    # ... and every other entry of the folder, by any name, is refused.
    for entry in models.iterdir():
        if entry.name in listed:
            continue
        for name in (entry.name, entry.name.removesuffix(".gguf")):
            with pytest.raises(ModelFileError, match="model not found"):
                resolve_model(name, models, allow_paths=False)


def test_a_model_reached_through_a_link_loads(tmp_path: Path, scripted_model: Path) -> None:
    """A link is not only listed: llama.cpp loads the file it points to, as the page would."""
    from llm.engine import Engine

    models = tmp_path / "models"
    models.mkdir()
    (models / "from-lm-studio.gguf").symlink_to(scripted_model)
    read_model_file(scripted_model)  # the file it points to, read under its own name first
    engine = Engine(n_ctx=256)
    try:
        loaded = engine.load(resolve_model("from-lm-studio", models, allow_paths=False))
        assert loaded.info.file_name == "from-lm-studio.gguf"
        assert loaded.info.path == str(models / "from-lm-studio.gguf")
        [entry] = scan_models(models)
        assert entry.file_name == entry.info.file_name == loaded.info.file_name
        assert entry.path == loaded.info.path  # the models page marks it loaded
    finally:
        engine.close()


def test_a_name_matching_no_model_suggests_the_closest(
    tmp_path: Path, scripted_model: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    smol, mistral = "SmolLM2-135M-Instruct.Q4_1.gguf", "mistral-7b-instruct-v0.2.Q4_K_M.gguf"
    for name in (smol, mistral):
        (models / name).write_bytes(scripted_model.read_bytes())
    with pytest.raises(ModelFileError, match=re.escape(f"(did you mean {smol}?)")):
        resolve_model("smollm2", models)
    with pytest.raises(ModelFileError, match=re.escape(f"(did you mean {mistral}?)")):
        resolve_model("mistral-7b-instruct-v0.2.Q4_K_S.gguf", models)
    with pytest.raises(ModelFileError, match=r"\(models there: mistral-7b.*, SmolLM2.*\)$"):
        resolve_model("qwen", models)
    with pytest.raises(ModelFileError, match=r"\(the folder has no models\)$"):
        resolve_model("qwen", tmp_path / "empty")
