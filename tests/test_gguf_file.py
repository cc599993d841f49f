"""GGUF header reading: model facts without loading weights, and precise reasons for bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gguf_factory import (
    write_empty,
    write_html,
    write_random,
    write_repeated_vocab,
    write_truncated,
    write_wrong_version,
)

from llm.errors import ModelFileError
from llm.gguf_file import read_gguf_header
from llm.model_files import resolve_model, scan_models


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
    models = tmp_path / "models"
    models.mkdir()
    outside = tmp_path / "secret.gguf"
    outside.write_bytes(scripted_model.read_bytes())
    (models / "link.gguf").symlink_to(outside)
    (models / "ok.gguf").write_bytes(scripted_model.read_bytes())
    assert resolve_model("ok.gguf", models, allow_paths=False) == models / "ok.gguf"
    assert resolve_model("ok", models, allow_paths=False) == models / "ok.gguf"
    for name in ("../secret.gguf", str(outside), "..", "sub/../../secret.gguf"):
        with pytest.raises(ModelFileError):
            resolve_model(name, models, allow_paths=False)
    with pytest.raises(ModelFileError, match="links outside"):
        resolve_model("link.gguf", models, allow_paths=False)
    with pytest.raises(ModelFileError, match="not a file in"):
        resolve_model("missing.gguf", models)
