"""Without the Hub: said plainly within seconds (no retries), and a failed download can be
retried or dismissed. Against closed local ports, a host name that does not resolve, and the
local Hub server (tests/support/hub_server.py)."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest
from support.hub_server import REPO, SMALL, HubServer

from llm import cli
from llm.errors import HubUnreachableError
from llm.hub import DownloadQueue
from llm.hub.api import HubSettings, list_gguf_files, search_models
from llm.hub.connection import CONNECT_TIMEOUT_S

PLAIN = "Hugging Face can't be reached — local models still work"


def _closed_endpoint() -> str:
    closed = HubServer().start()
    endpoint = closed.endpoint
    closed.stop()  # nothing listens there any more
    return endpoint


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize("where", ["closed port", "unknown name"])
def test_search_and_model_info_end_within_3_s_with_the_plain_message(
    no_hub: None, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = _closed_endpoint() if where == "closed port" else "http://no-such-hub.invalid"
    settings = HubSettings(endpoint=endpoint)
    caplog.set_level(logging.WARNING)
    for call in (
        lambda: search_models("qwen", settings=settings),
        lambda: list_gguf_files(REPO, settings=settings),
    ):
        started = time.monotonic()
        with pytest.raises(HubUnreachableError) as caught:
            call()
        assert time.monotonic() - started < 3.0
        assert str(caught.value).startswith(PLAIN)
        assert f"cannot reach {endpoint}" in str(caught.value)
        assert caught.value.code == "hub_unreachable"
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]  # no retry chatter


def test_the_command_line_says_it_in_one_line_without_retries(
    no_hub: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", _closed_endpoint())
    started = time.monotonic()
    assert cli.main(["--models-dir", str(tmp_path), "search", "qwen"]) == 2
    assert time.monotonic() - started < 3.0
    out, err = capfd.readouterr()
    assert err.startswith(f"error: {PLAIN}") and err.count("\n") == 1, err
    assert "Retrying" not in out + err


def test_a_host_that_never_completes_the_connection_is_given_up_in_time(no_hub: None) -> None:
    # A listening socket whose queue is full drops new connection attempts (as a network
    # that lost the route does): the connection neither succeeds nor fails by itself.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        fillers = []
        try:
            for _ in range(3):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(server.getsockname())
                fillers.append(filler)
            time.sleep(0.2)
            endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
            started = time.monotonic()
            with pytest.raises(HubUnreachableError):
                list_gguf_files(REPO, settings=HubSettings(endpoint=endpoint))
            assert CONNECT_TIMEOUT_S - 0.2 < time.monotonic() - started < 3.0
        finally:
            for filler in fillers:
                filler.close()


def test_a_failed_download_can_be_retried_then_dismissed(online: HubServer, tmp_path: Path) -> None:
    online.switches.corrupt.add(SMALL)  # the first try fails its checksum
    queue = DownloadQueue(tmp_path)
    try:
        first = queue.add(REPO, SMALL)
        failed = queue.wait(first, timeout=30)
        assert failed.state == "failed" and failed.error_code == "checksum"
        assert queue.dismiss("no-such-id") is False
        online.switches.corrupt.clear()
        # What each progress event lets a page draw: never the failed row beside its retry.
        listed: list[set[str]] = []
        queue.subscribe(lambda _: listed.append({j.job_id for j in queue.jobs()}))
        second = queue.retry(first)
        assert second != first
        assert [j.job_id for j in queue.jobs()] == [second]  # the failed row was replaced
        done = queue.wait(second, timeout=30)
        assert done.state == "done" and (tmp_path / SMALL).exists()
        with pytest.raises(Exception, match="has not failed"):
            queue.retry(second)
        assert queue.dismiss(second) is True
        assert queue.jobs() == []
        assert listed and all(first not in ids for ids in listed)
    finally:
        queue.close()
