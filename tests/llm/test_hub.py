"""The Hub without downloading: names, the catalog, RAM/disk verdicts, search, file listings,
and the errors users see (404, 401/403, offline, no network) — against a real local HTTP
server that speaks the Hub's API (tests/support/hub_server.py)."""

from __future__ import annotations

import hashlib
import itertools

import pytest
from support.hub_server import (
    GATED_REPO,
    MEDIUM_REPO,
    OTHER_REPO,
    PRIVATE_REPO,
    REPO,
    SMALL,
    SMALL_Q8,
    SPLIT,
    HubServer,
)

from llm import cli
from llm.catalog import CATALOG_PATH, load_catalog
from llm.config import FORMAT_CHOICES
from llm.fit import RUNTIME_OVERHEAD_BYTES, Machine, check_fit, ram_for_hub_file
from llm.hub import (
    DownloadProgress,
    HubAccessError,
    HubError,
    HubNetworkError,
    HubNotFoundError,
    HubOfflineError,
    HubSettings,
    UnsafeFileNameError,
    check_repo_id,
    download_model,
    list_gguf_files,
    parse_quantization,
    safe_local_name,
    search_models,
    split_part,
)

GB = 1000**3


# --- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file_name", "quant"),
    [
        ("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", "Q4_K_M"),
        ("mistral-7b-instruct-v0.2.Q2_K.gguf", "Q2_K"),
        ("mistral-7b-instruct-v0.2.Q8_0.gguf", "Q8_0"),
        ("qwen2.5-0.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("Llama-3.2-1B-Instruct-IQ2_XS.gguf", "IQ2_XS"),
        ("Qwen_Qwen3-1.7B-Q6_K_L.gguf", "Q6_K_L"),
        ("model-bf16-00001-of-00002.gguf", "BF16"),
        ("phi-3-mini-4k-instruct-fp16.gguf", "F16"),
        ("phi-3-mini-4k-instruct-q4.gguf", "Q4"),
        ("Q5_K_M/big-model-Q5_K_M-00002-of-00003.gguf", "Q5_K_M"),
        ("plain-model.gguf", ""),
    ],
)
def test_quantization_is_read_from_the_file_name(file_name: str, quant: str) -> None:
    assert parse_quantization(file_name) == quant


def test_split_file_names() -> None:
    assert split_part("big-Q8_0-00002-of-00003.gguf") == ("big-Q8_0", 2, 3)
    assert split_part("dir/m-00001-of-00002.gguf") == ("dir/m", 1, 2)
    assert split_part("model.Q4_K_M.gguf") is None


@pytest.mark.parametrize(
    "bad",
    [
        "../evil.gguf",
        "sub/../../evil.gguf",
        "/etc/evil.gguf",
        "C:/evil.gguf",
        "a\\..\\evil.gguf",
        "model.bin",
        "model.gguf.exe",
        ".hidden.gguf",
        "dir//m.gguf",
        "line\nbreak.gguf",
        "",
    ],
)
def test_file_names_that_could_escape_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeFileNameError):
        safe_local_name(bad)


@pytest.mark.parametrize("control", ["\u202e", "\u202d", "\u2066", "\u2067", "\u200f", "\u061c"])
def test_file_names_with_direction_controls_are_refused(control: str) -> None:
    """ "model\u202efuggexe.gguf" would show as "model" + "fuggexe" reversed: a name that
    displays as something it is not."""
    with pytest.raises(UnsafeFileNameError, match="direction control"):
        safe_local_name(f"model{control}exe.gguf")


def test_a_search_must_be_short_text_without_control_characters(online: HubServer) -> None:
    with pytest.raises(HubError, match="at most 200 characters"):
        search_models("x" * 201)
    with pytest.raises(HubError, match="control characters"):
        search_models("tiny\x00llama")
    assert [r.repo_id for r in search_models("medium")] == [MEDIUM_REPO]


def test_a_file_in_a_repository_folder_gets_its_own_name() -> None:
    assert safe_local_name("Q4_K_M/model-Q4_K_M.gguf") == "model-Q4_K_M.gguf"


@pytest.mark.parametrize("bad", ["nothing", "a/b/c", "../x", "owner/..", "/x", "a b/c"])
def test_repository_ids_are_checked(bad: str) -> None:
    with pytest.raises(HubError, match="owner/name"):
        check_repo_id(bad)


# --- the catalog ----------------------------------------------------------------------------
def test_catalog_lists_the_recommended_first_model() -> None:
    catalog = load_catalog()
    first = catalog.recommended()
    assert (first.repo_id, first.file_name) == (
        "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
        "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf",
    )
    assert first.size_bytes == 668_788_096
    assert first.chat_format == "zephyr"


def test_catalog_has_mistral_q2_k_to_q8_0() -> None:
    catalog = load_catalog()
    mistral = [e for e in catalog.entries if e.repo_id == "TheBloke/Mistral-7B-Instruct-v0.2-GGUF"]
    quants = [e.quantization for e in mistral]
    assert quants[0] == "Q2_K" and quants[-1] == "Q8_0" and len(quants) == 12
    q4 = catalog.find(
        "TheBloke/Mistral-7B-Instruct-v0.2-GGUF", "mistral-7b-instruct-v0.2.Q4_K_M.gguf"
    )
    assert q4 is not None
    assert q4.size_bytes == 4_368_439_584  # the Hub's 4.37 GB
    assert round(q4.ram_bytes / GB, 2) == 4.91  # + 0.54 GB of KV cache at 4096 tokens
    assert all(
        a.size_bytes < b.size_bytes
        for a, b in itertools.pairwise(mistral)
        if a.quantization != "Q5_0"
    )


def test_catalog_entries_are_consistent() -> None:
    catalog = load_catalog()
    assert catalog.default_context == 4096
    assert len({e.model_id for e in catalog.entries}) >= 7
    for entry in catalog.entries:
        # RAM is the file plus an f16 KV cache at the default context (capped at the trained one).
        assert entry.ram_bytes == entry.ram_bytes_at(catalog.default_context), entry.file_name
        assert entry.chat_format in FORMAT_CHOICES
        assert parse_quantization(entry.file_name) == entry.quantization
        assert safe_local_name(entry.file_name) == entry.file_name
        check_repo_id(entry.repo_id)
        assert entry.size_source in ("hub", "computed")
        assert entry.license and entry.description


def test_catalog_carries_no_checksums() -> None:
    text = CATALOG_PATH.read_text(encoding="utf-8")
    assert "sha256 =" not in text and "sha256=" not in text


# --- verdicts -------------------------------------------------------------------------------
def test_ram_and_disk_verdicts() -> None:
    laptop = Machine(ram_total=16 * GB, ram_available=10 * GB, disk_free=50 * GB, models_dir="/m")
    assert check_fit(int(4.4 * GB), laptop, ram_bytes=int(4.9 * GB)).ram == "fits"
    tight = check_fit(int(7.7 * GB), laptop, ram_bytes=int(12 * GB))
    assert tight.ram == "tight" and "close other programs" in tight.message
    too_big = check_fit(40 * GB, laptop, ram_bytes=45 * GB)
    assert too_big.ram == "does_not_fit" and too_big.label == "does not fit"
    assert "16.0 GB" in too_big.message
    assert too_big.disk_ok is True
    full = Machine(ram_total=16 * GB, ram_available=10 * GB, disk_free=2 * GB, models_dir="/m")
    verdict = check_fit(4 * GB, full, ram_bytes=5 * GB)
    assert not verdict.disk_ok and "not enough disk space" in verdict.message
    # a partly downloaded file needs only the rest
    assert check_fit(4 * GB, full, ram_bytes=5 * GB, already_bytes=3 * GB).disk_ok


def test_ram_needed_uses_the_catalog_or_estimates() -> None:
    catalog = load_catalog()
    tiny = ("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    exact = ram_for_hub_file(*tiny, 668_788_096, n_ctx=4096, catalog=catalog)
    # The catalog's figure (weights + KV cache at its default context) plus the runtime.
    assert not exact.estimated
    assert exact.total == 714_925_440 + RUNTIME_OVERHEAD_BYTES
    # At a smaller context the KV cache shrinks; TinyLlama's trained context (2048) caps it.
    assert ram_for_hub_file(*tiny, 668_788_096, n_ctx=1024, catalog=catalog).kv_cache == (
        2 * 2 * 22 * 1024 * 4 * 64
    )
    assert ram_for_hub_file(*tiny, 668_788_096, n_ctx=8192, catalog=catalog).total == exact.total
    other = ("someone/Other-GGUF", "other.Q4_K_M.gguf", 1_000_000_000)
    guess = ram_for_hub_file(*other, n_ctx=4096, catalog=catalog)
    # Unknown file: 15% of its size for the KV cache at 4096 tokens, scaled with the context.
    assert guess.estimated and guess.total == 1_150_000_000 + RUNTIME_OVERHEAD_BYTES
    assert ram_for_hub_file(*other, n_ctx=8192).kv_cache == 300_000_000


# --- search and listing ---------------------------------------------------------------------
def test_search_finds_gguf_repositories_most_downloaded_first(online: HubServer) -> None:
    found = search_models("")
    ids = [r.repo_id for r in found]
    assert ids == [REPO, MEDIUM_REPO, GATED_REPO]  # no private, no non-GGUF repository
    assert OTHER_REPO not in ids and PRIVATE_REPO not in ids
    assert found[0].downloads == 500 and found[0].likes == 7
    assert [r.repo_id for r in search_models("medium")] == [MEDIUM_REPO]
    assert search_models("no such words") == []
    assert next(r for r in found if r.repo_id == GATED_REPO).gated


def test_listing_gives_sizes_checksums_and_quantization(online: HubServer) -> None:
    listing = list_gguf_files(REPO)
    files = online.repos[REPO].files
    by_name = {m.file_name: m for m in listing.models}
    assert set(by_name) == {SMALL, SMALL_Q8, SPLIT[0]}  # README and config.json left out
    small = by_name[SMALL]
    assert small.size_bytes == len(files[SMALL])
    assert small.quantization == "Q4_K_M"
    assert small.files[0].sha256 == hashlib.sha256(files[SMALL]).hexdigest()
    split = by_name[SPLIT[0]]
    assert split.parts == 2 and split.quantization == "Q2_K"
    assert split.size_bytes == len(files[SPLIT[0]]) + len(files[SPLIT[1]])
    assert split.local_name == "scripted-Q2_K-00001-of-00002.gguf"
    assert "2 parts" in split.name
    assert listing.commit == online.repos[REPO].commit
    assert [m.size_bytes for m in listing.models] == sorted(m.size_bytes for m in listing.models)
    assert list_gguf_files(GATED_REPO).gated


# --- errors ---------------------------------------------------------------------------------
def test_unknown_repository_is_a_clear_404(online: HubServer, tmp_path) -> None:
    with pytest.raises(HubNotFoundError, match="repository test-org/Nope-GGUF not found"):
        list_gguf_files("test-org/Nope-GGUF")
    with pytest.raises(HubNotFoundError, match="repository test-org/Nope-GGUF not found"):
        download_model("test-org/Nope-GGUF", "x.gguf", tmp_path)


def test_unknown_file_is_a_clear_404(online: HubServer, tmp_path) -> None:
    events: list[DownloadProgress] = []
    with pytest.raises(HubNotFoundError, match=f"file missing.gguf not found in {REPO}"):
        download_model(REPO, "missing.gguf", tmp_path, on_progress=events.append)
    assert events[-1].state == "failed" and "not found" in events[-1].message
    assert list(tmp_path.iterdir()) == []


def test_unknown_revision(online: HubServer) -> None:
    with pytest.raises(HubNotFoundError, match="revision v9 not found"):
        list_gguf_files(REPO, revision="v9")


def test_gated_repository_without_token_says_accept_license_and_set_hf_token(
    online: HubServer, tmp_path
) -> None:
    with pytest.raises(HubAccessError) as caught:
        download_model(GATED_REPO, "gated.Q4_K_M.gguf", tmp_path)
    message = str(caught.value)
    assert "accept its license" in message and "HF_TOKEN" in message
    assert f"{online.endpoint}/{GATED_REPO}" in message
    assert [r.status for r in online.requests if "/resolve/" in r.path] == [401]
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_gated_repository_with_a_token_that_has_no_access(
    online: HubServer, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_granted")
    with pytest.raises(HubAccessError, match="not been granted access"):
        download_model(GATED_REPO, "gated.Q4_K_M.gguf", tmp_path)
    assert [r.status for r in online.requests if "/resolve/" in r.path] == [403]


def test_gated_repository_with_an_accepted_token_downloads(
    online: HubServer, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    online.switches.tokens.add("hf_granted")
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    path = download_model(GATED_REPO, "gated.Q4_K_M.gguf", tmp_path)
    assert path.read_bytes() == online.repos[GATED_REPO].files["gated.Q4_K_M.gguf"]


def test_private_repository_without_token_is_not_found_and_mentions_hf_token(
    online: HubServer,
) -> None:
    with pytest.raises(HubNotFoundError, match="HF_TOKEN"):
        list_gguf_files(PRIVATE_REPO)
    assert online.requests[-1].status == 401


def test_offline_mode_is_honoured(
    online: HubServer, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE"):
        search_models("scripted")
    with pytest.raises(HubOfflineError, match="HF_HUB_OFFLINE"):
        download_model(REPO, SMALL, tmp_path)
    assert online.requests == []  # nothing was sent


def test_no_network_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    closed = HubServer().start()
    endpoint = closed.endpoint
    closed.stop()  # nothing listens there any more
    settings = HubSettings(endpoint=endpoint)
    # (search_models says the same, but only after huggingface_hub's five retries: about 23 s)
    with pytest.raises(HubNetworkError, match=f"cannot reach {endpoint}"):
        list_gguf_files(REPO, settings=settings)


def test_server_errors_say_try_later(online: HubServer) -> None:
    online.switches.force_status["/api/models/"] = 503
    with pytest.raises(HubNetworkError, match="503"):
        list_gguf_files(REPO)


# --- the command line -----------------------------------------------------------------------
def test_cli_search_files_and_catalog(online: HubServer, tmp_path, capsys) -> None:
    assert cli.main(["--models-dir", str(tmp_path), "search", "scripted"]) == 0
    assert f"{REPO}  (500 downloads, 7 likes)" in capsys.readouterr().out
    assert cli.main(["--models-dir", str(tmp_path), "files", REPO]) == 0
    out = capsys.readouterr().out
    assert SMALL in out and "Q4_K_M" in out and "fits: needs about" in out
    assert "scripted-Q2_K.gguf (2 parts)" in out
    assert cli.main(["--models-dir", str(tmp_path), "catalog"]) == 0
    out = capsys.readouterr().out
    assert "TinyLlama 1.1B Chat v1.0 Q4_K_M *recommended*" in out


def test_cli_ram_figures_are_at_the_configured_context(tmp_path, capsys) -> None:
    # The same rule as loading and the models page: weights + KV cache at inference.n_ctx +
    # the runtime. Mistral 7B Q4_K_M at 16384 tokens: 4.37 GB + 2.15 GB + 0.3 GB.
    config = tmp_path / "config.toml"
    config.write_text("[inference]\nn_ctx = 16384\n", encoding="utf-8")
    assert cli.main(["--config", str(config), "--models-dir", str(tmp_path), "catalog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = lines.index(
        "    TheBloke/Mistral-7B-Instruct-v0.2-GGUF  mistral-7b-instruct-v0.2.Q4_K_M.gguf"
    )
    assert "needs 6.8 GB of RAM" in lines[at + 1]


def test_cli_errors_are_one_line(online: HubServer, tmp_path, capsys) -> None:
    args = ["--models-dir", str(tmp_path), "download", GATED_REPO, "gated.Q4_K_M.gguf"]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 2
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and "gated model" in last
    assert "Traceback" not in err
    code = cli.main(["--models-dir", str(tmp_path), "download", REPO, "../escape.gguf"])
    assert code == 2 and "refusing" in capsys.readouterr().err
    assert not [r for r in online.requests if "escape" in r.path]
