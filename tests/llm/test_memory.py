"""The fit rule (llm.fit): the RAM check before loading refuses with both numbers and allows an
explicit override; the verdict the pages and the CLI show follows the same rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from llm.engine import Engine
from llm.fit import (
    RUNTIME_OVERHEAD_BYTES,
    InsufficientMemoryError,
    Machine,
    available_ram_bytes,
    check_fit,
    check_fits_in_ram,
    ram_for_file,
    ram_verdict,
)
from llm.gguf_file import read_gguf_header


def test_needed_is_weights_plus_kv_cache_plus_overhead(scripted_model: Path) -> None:
    info = read_gguf_header(scripted_model)
    # 1 layer x 4 kv heads x 16 dims x 2 (K and V) x 2 bytes (f16) per token
    assert info.kv_cache_bytes(1000) == 1000 * 1 * 4 * 16 * 2 * 2
    needed = check_fits_in_ram(info, 1000, available=10**12)
    assert needed == info.size_bytes + 256_000 + RUNTIME_OVERHEAD_BYTES


def test_mistral_7b_q4_k_m_does_not_fit_in_3_gb(scripted_model: Path) -> None:
    # Mistral-7B's shape: 32 layers, 4096 embd, 32 heads, 8 kv heads; Q4_K_M file 4.37 GB.
    info = dataclasses.replace(
        read_gguf_header(scripted_model),
        file_name="mistral-7b-instruct-v0.2.Q4_K_M.gguf",
        size_bytes=4_368_438_944,
        n_layer=32,
        n_embd=4096,
        n_head=32,
        n_head_kv=8,
    )
    with pytest.raises(InsufficientMemoryError) as error:
        check_fits_in_ram(info, 4096, available=3_000_000_000)
    message = str(error.value)
    assert "needs about 5.2 GB of RAM" in message and "only 3.0 GB is available" in message
    assert "536.9 MB context cache for 4096 tokens" in message


def test_engine_refuses_a_model_too_big_for_ram_unless_told(
    scripted_model: Path, tmp_path: Path
) -> None:
    from support.gguf_factory import write_scripted_model

    # A real file whose trained context is huge: at 1M tokens x 48 layers the KV cache needs
    # more RAM than this machine has, though the weights are tiny.
    path = tmp_path / "long-context.gguf"
    write_scripted_model(path, ["Hi"], n_layer=48, n_embd=512, n_ff=8, n_ctx_train=1_048_576)
    engine = Engine(n_ctx=1_048_576)
    try:
        info = read_gguf_header(path)
        assert info.kv_cache_bytes(engine.context_for(info)) > available_ram_bytes()
        with pytest.raises(InsufficientMemoryError, match="GB is available"):
            engine.load(path)
        assert engine.loaded is None and engine.worker_pid is None  # nothing was started
        small = Engine(n_ctx=512)
        small.load(scripted_model)  # fits: loads normally
        small.close()
    finally:
        engine.close()


def test_loading_and_the_verdict_follow_one_rule(scripted_model: Path) -> None:
    # What the engine loads without asking is exactly what the pages and the CLI call "fits".
    info = read_gguf_header(scripted_model)
    need = ram_for_file(info, 2048)
    assert need.total == info.size_bytes + info.kv_cache_bytes(2048) + RUNTIME_OVERHEAD_BYTES
    assert check_fits_in_ram(info, 2048, available=need.total) == need.total
    with pytest.raises(InsufficientMemoryError):
        check_fits_in_ram(info, 2048, available=need.total - 1)
    total = 100 * need.total
    for free, verdict in ((need.total, "fits"), (need.total - 1, "tight")):
        machine = Machine(ram_total=total, ram_available=free, disk_free=10**12, models_dir="/m")
        assert check_fit(info.size_bytes, machine, ram_bytes=need.total).ram == verdict
    assert ram_verdict(need.total, need.total - 1, need.total) == "does_not_fit"
