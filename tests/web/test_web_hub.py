"""The models page's "Get models" panel end to end, in real Chromium.

A local Hub server (tests/support/hub_server.py) serves small generated GGUF models, throttled so a
download takes a few seconds and held part-way so the page is seen mid-download however busy the
machine is; the app runs as a subprocess with HF_ENDPOINT pointing at it and
an empty models folder. The user takes the one-click first model, then searches the Hub, sees
sizes and the RAM verdict, downloads another file with a moving progress bar, meets the
warning for a file that does not fit and the library's one-line error, and loads the model.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import RunningApp, go_to, open_page, running_app, screenshots_dir
from support.hub_server import MEDIUM, MEDIUM_REPO, REPO, SMALL, HubServer, populate
from support.replies import SCRIPT

from llm.catalog import load_catalog
from llm.hub import CHUNK_SIZE

pytestmark = pytest.mark.timeout(120)

THROTTLE_BPS = 1_000_000  # the 2.7 MB test models take about 3 s: the bar visibly moves
HUGE = 50 * 10**12  # a size announced for a file that fits neither RAM nor disk
CONFIG = """
[app]
language = "en"
dark_mode = true

[inference]
n_ctx = 1024
n_threads = 1
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """The test Hub, plus the catalog's recommended first model (a small scripted model)."""
    with HubServer() as server:
        populate(server, tmp_path_factory.mktemp("hub-files"), SCRIPT)
        first = load_catalog().recommended()
        medium = server.repos[MEDIUM_REPO].files[MEDIUM]
        server.add_repo(first.repo_id, {first.file_name: medium}, downloads=1000)
        yield server


@pytest.fixture(scope="module")
def app(hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    work = tmp_path_factory.mktemp("web-hub")
    models = tmp_path_factory.mktemp("hub-models")  # empty: the first-model offer shows
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_ENDPOINT", hub.endpoint)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.delenv("HF_TOKEN", raising=False)
        with running_app(work, models, config_toml=CONFIG) as running:
            patch.undo()  # the app has its environment; the tests keep theirs
            yield running


def _hold_downloads_at(hub: HubServer, offset: int) -> None:
    """The next file bodies stop at `offset` bytes until `_finish_held_download` releases them."""
    hub.switches.release = threading.Event()
    hub.switches.hold_at = offset


def _finish_held_download(page: Page, hub: HubServer, slot: int) -> None:
    """The held download shows part-done on its line and bar; released, it ends verified at
    100 %, its line showing speed and sizes on the way."""
    line = page.locator(f"#dl_line_{slot}")
    expect(line).to_contain_text(re.compile(r"\b[1-9]\d?% · .* of "), timeout=30_000)
    bar = page.locator(f"#dl_bar_{slot} [role=progressbar]").first
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9]\d?(\.\d+)?$"))
    held = _bar_value(page, slot)
    hub.switches.release.set()
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = line.inner_text() if line.count() else ""
        if match := re.match(r"(\d+)% · .* of .*", text):
            seen.add(match.group(1))
            assert "MB/s" in text or len(seen) == 1, text
        if "checksum verified" in text:
            assert _bar_value(page, slot) == 100.0 > held, "the progress bar did not move"
            return
        assert not text.startswith("failed"), text
        page.wait_for_timeout(100)
    raise AssertionError(f"the download did not finish; saw {sorted(seen)}")


def _bar_value(page: Page, slot: int) -> float:
    value = page.locator(f"#dl_bar_{slot} [role=progressbar]").first.get_attribute("aria-valuenow")
    return float(value or 0)


def test_get_first_model_search_download_and_load(
    app: RunningApp, hub: HubServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    shots = screenshots_dir(request)
    first = load_catalog().recommended()
    hub.reset()
    hub.switches.throttle_bps = THROTTLE_BPS
    page = open_page(browser, app.url + "chat")
    try:
        # Empty folder: the chat page offers the recommended first model in one click...
        expect(page.locator("#download_recommended")).to_be_visible()
        expect(page.locator("#download_recommended")).to_contain_text(re.compile(r"\S"))
        page.screenshot(path=str(shots / "chat-first-model-offer.png"))
        # ...and so does the models page, next to the catalog.
        page.goto(app.url + "models")
        page.wait_for_selector("#navbar")
        expect(page.locator("#no_models")).to_be_visible()
        catalog = page.locator("#catalog_table")
        expect(catalog).to_contain_text(first.file_name)
        expect(catalog.locator("tbody tr").first).to_contain_text("★")
        expect(catalog).to_contain_text(re.compile(r"fits|tight|does not fit"))
        expect(page.locator("#machine_line")).to_contain_text("RAM")
        page.screenshot(path=str(shots / "hub-empty-dark.png"), full_page=True)

        _hold_downloads_at(hub, 4 * CHUNK_SIZE)  # about 38 % of the file
        page.locator("#download_recommended").click()
        expect(page.locator("#downloads")).to_be_visible()
        expect(page.locator("#dl_line_0")).to_contain_text("%", timeout=10_000)
        page.screenshot(path=str(shots / "hub-downloading-dark.png"), full_page=True)
        _finish_held_download(page, hub, 0)
        # Verified: the models table lists it at once, without a Rescan.
        table = page.locator("#model_table")
        expect(table).to_contain_text(first.file_name)
        expect(page.locator("#no_models")).to_be_hidden()
        assert (app.models_dir / first.file_name).stat().st_size == len(
            hub.repos[first.repo_id].files[first.file_name]
        )

        # Search the Hub: repositories, then a repository's files with sizes and verdicts.
        page.locator("#hub_query").fill("gguf")
        page.locator("#hub_query").press("Enter")
        results = page.locator("#hub_results")
        expect(results).to_contain_text(REPO)
        expect(results).to_contain_text(MEDIUM_REPO)
        expect(results).not_to_contain_text("Safetensors")  # not a GGUF repository
        results.get_by_text(REPO, exact=True).click()
        files = page.locator("#hub_files")
        expect(files).to_contain_text(SMALL)
        small_size = len(hub.repos[REPO].files[SMALL])
        expect(files).to_contain_text(f"{small_size / 1000:.1f} KB")
        expect(files).to_contain_text("Q4_K_M")
        expect(files).to_contain_text("2 parts")  # the split model is one row
        expect(files.locator("tbody tr").filter(has_text=SMALL)).to_contain_text("fits")

        # Download the small file: queued, progress, verified, listed, then loaded.
        files.get_by_text(SMALL, exact=True).click()
        expect(page.locator("#chosen_line")).to_contain_text("fits: needs about")
        hub.switches.throttle_bps = THROTTLE_BPS / 5  # a smaller file: about 2 s too
        _hold_downloads_at(hub, CHUNK_SIZE)  # one chunk: 70 % of this file
        page.locator("#hub_download").click()
        _finish_held_download(page, hub, 0)
        expect(table).to_contain_text(SMALL)
        expect(files.locator("tbody tr").filter(has_text=SMALL)).to_contain_text(
            "in the models folder"
        )
        expect(page.locator("#model_select")).to_contain_text(SMALL)  # selected for Load
        page.locator("#load_model").click()
        expect(page.locator("#loaded_line")).to_contain_text(SMALL, timeout=60_000)

        # A file that does not fit: a warning first, then the library's one-line error.
        hub.switches.claimed_sizes[MEDIUM] = HUGE
        page.locator("#hub_query").fill(MEDIUM_REPO)
        page.locator("#hub_query").press("Enter")
        expect(files).to_contain_text("does not fit")
        files.get_by_text(MEDIUM, exact=True).click()
        page.locator("#hub_download").click()
        expect(page.locator("#confirm_big")).to_be_visible()
        page.screenshot(path=str(shots / "hub-warning-dark.png"), full_page=True)
        page.locator("#download_anyway").click()
        expect(page.locator("#dl_line_0")).to_contain_text(
            "failed: not enough disk space for",
            timeout=45_000,  # after the queue's previous job
        )
        assert not (app.models_dir / MEDIUM).exists()

        # The same panel in light mode.
        page.locator("#theme_toggle button").first.click()
        page.screenshot(path=str(shots / "hub-light.png"), full_page=True)
        go_to(page, "Chat")
        expect(page.locator("#model_line")).to_contain_text(SMALL)
    finally:
        page.close()


def test_hub_errors_are_one_line(app: RunningApp, hub: HubServer, browser: Browser) -> None:
    hub.reset()
    page = open_page(browser, app.url + "models")
    try:
        page.locator("#hub_query").fill("test-org/No-Such-GGUF")
        page.locator("#hub_query").press("Enter")
        expect(page.locator("#hub_error")).to_have_text(
            re.compile(r"^repository test-org/No-Such-GGUF not found on http://127\.0\.0\.1:\d+")
        )
        page.locator("#hub_query").fill("test-org/Gated-GGUF")
        page.locator("#hub_search").click()  # at once: the button searches what was typed
        # The Hub lists a gated repository's files; the download says what to do.
        expect(page.locator("#files_line")).to_contain_text("gated: needs HF_TOKEN")
        page.locator("#hub_download").click()  # its one file is selected already
        expect(page.locator("#dl_line_0")).to_have_text(
            re.compile(r"^failed: test-org/Gated-GGUF is a gated model: accept its license at ")
        )

        # Cancel: the download stops and leaves nothing behind.
        hub.switches.throttle_bps = 100_000
        page.locator("#hub_query").fill(MEDIUM_REPO)
        page.locator("#hub_query").press("Enter")
        page.locator("#hub_download").click()
        expect(page.locator("#dl_line_0")).to_contain_text("% ·", timeout=10_000)
        page.locator("#dl_cancel_0").click()
        expect(page.locator("#dl_line_0")).to_have_text("cancelled")
        expect(page.locator("#dl_cancel_0")).to_have_count(0)  # no greyed button left behind
        assert not [p.name for p in app.models_dir.iterdir() if p.name.startswith("medium")]
        page.locator("#dl_dismiss_0").click()
        expect(page.locator("#dl_line_0")).not_to_have_text("cancelled")
    finally:
        page.close()


def test_a_failed_download_offers_retry_and_dismiss(
    app: RunningApp, hub: HubServer, browser: Browser, request: pytest.FixtureRequest
) -> None:
    hub.reset()
    hub.switches.corrupt.add(SMALL)  # its checksum fails: the download fails
    page = open_page(browser, app.url + "models")
    try:
        # Earlier tests' finished rows, dismissed as a user would: only this test's row stays.
        # The tab's state first (the rows come with the machine line): before it, no rows show.
        expect(page.locator("#machine_line")).to_contain_text(re.compile(r"\S"), timeout=30_000)
        deadline = time.monotonic() + 30
        while page.locator("#downloads").count() and time.monotonic() < deadline:
            if page.locator("#dl_dismiss_0").is_visible():
                page.locator("#dl_dismiss_0").click()
            page.wait_for_timeout(200)
        expect(page.locator("#downloads")).to_have_count(0)
        (app.models_dir / SMALL).unlink(missing_ok=True)
        page.locator("#hub_query").fill(REPO)
        page.locator("#hub_query").press("Enter")
        page.locator("#hub_files").get_by_text(SMALL, exact=True).click()
        page.locator("#hub_download").click()
        line = page.locator("#dl_line_0")
        expect(line).to_contain_text("failed: ", timeout=30_000)
        expect(line).to_contain_text("checksum")
        # A failed row says why, with Retry and Dismiss: no bar, no greyed Cancel.
        expect(page.locator("#dl_bar_0")).to_have_count(0)
        expect(page.locator("#dl_cancel_0")).to_have_count(0)
        expect(page.locator("#dl_retry_0")).to_be_enabled()
        page.locator("#downloads").scroll_into_view_if_needed()
        page.screenshot(path=screenshots_dir(request) / "download-failed.png")
        hub.switches.corrupt.clear()
        page.locator("#dl_retry_0").click()
        expect(line).to_have_text("done: checksum verified", timeout=30_000)
        assert (app.models_dir / SMALL).exists()
        page.locator("#dl_dismiss_0").click()
        try:
            expect(page.locator("#downloads")).to_have_count(0)  # the row is gone
        except AssertionError as exc:  # which row stayed (a rare failure in full runs)
            rows = page.locator("#downloads").all_inner_texts()
            raise AssertionError(f"rows left after Dismiss: {rows}") from exc
    finally:
        page.close()


def test_environment_is_restored() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
