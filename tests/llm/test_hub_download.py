"""Downloading from the Hub into the models folder, against a real local HTTP server that speaks
the Hub's API (tests/support/hub_server.py): progress events, resume after a dropped connection and
after the client process is killed, checksum verification, disk space, the queue, and the
downloaded model loading in the real engine."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.hub_server import (
    MEDIUM,
    MEDIUM_REPO,
    REPO,
    SMALL,
    SMALL_Q8,
    SPLIT,
    HubServer,
    git_blob_id,
)
from support.replies import REPLY

from llm.config import SamplingParams
from llm.engine import Engine
from llm.hub import (
    ChecksumError,
    DiskFullError,
    DownloadCancelled,
    DownloadProgress,
    DownloadQueue,
    HubError,
    UnsafeFileNameError,
    download_model,
    partial_downloads,
)
from llm.model_files import scan_models
from llm.prompts import FORMATS

KIB = 1024


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Files a finished download must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".gguf"))


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_download_reports_progress_then_the_model_is_listed_and_loads(
    online: HubServer, tmp_path: Path
) -> None:
    online.switches.throttle_bps = 4_000_000  # about 0.7 s, so speed and time left show
    data = online.repos[MEDIUM_REPO].files[MEDIUM]
    events: list[DownloadProgress] = []
    path = download_model(MEDIUM_REPO, MEDIUM, tmp_path, on_progress=events.append, job_id="j1")

    assert path == tmp_path / MEDIUM
    assert sha256(path.read_bytes()) == sha256(data)
    assert leftovers(tmp_path) == []
    states = [e.state for e in events]
    assert states[0] == "downloading" and states[-2:] == ["verifying", "done"]
    moving = [e for e in events if e.state == "downloading"]
    assert len(moving) >= 4
    assert [e.bytes_done for e in moving] == sorted(e.bytes_done for e in moving)
    assert all(e.bytes_total == len(data) and e.job_id == "j1" for e in events)
    assert any(e.mb_per_s > 0.5 and e.eta_s is not None for e in moving)
    assert events[-1].percent == 100.0 and events[-1].path == str(path)
    assert events[-1].message == "checksum verified"

    [entry] = scan_models(tmp_path)
    assert entry.file_name == MEDIUM and entry.error is None
    engine = Engine(n_ctx=256)
    try:
        loaded = engine.load(path)
        assert loaded.info.file_name == MEDIUM
        text = "".join(
            e["text"]
            for e in engine.generate(
                [{"role": "user", "content": "Hi"}],
                FORMATS["zephyr"],
                SamplingParams(max_tokens=32, seed=1),
            )
            if e["type"] == "text"
        )
        assert text == REPLY
    finally:
        engine.close()


def test_a_dropped_connection_resumes_with_a_range_request(
    online: HubServer, tmp_path: Path
) -> None:
    data = online.repos[MEDIUM_REPO].files[MEDIUM]
    online.switches.drop_after = 700 * KIB  # the first response breaks off after 700 KiB
    online.switches.drops_left = 1
    path = download_model(MEDIUM_REPO, MEDIUM, tmp_path)

    assert sha256(path.read_bytes()) == sha256(data)
    gets = online.file_gets(MEDIUM)
    assert len(gets) == 2
    assert gets[0].range is None and gets[0].body_bytes == 700 * KIB
    # huggingface_hub keeps whole 256 KiB chunks: it asks again from the last one it wrote
    assert gets[1].range == f"bytes={512 * KIB}-"
    assert online.bytes_served(MEDIUM) < 1.1 * len(data)


def test_a_paused_download_resumes_where_it_stopped(online: HubServer, tmp_path: Path) -> None:
    data = online.repos[MEDIUM_REPO].files[MEDIUM]
    online.switches.throttle_bps = 1_500_000
    cancel = threading.Event()

    def pause_after_a_megabyte(event: DownloadProgress) -> None:
        if event.bytes_done >= 1024 * KIB:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_model(
            MEDIUM_REPO,
            MEDIUM,
            tmp_path,
            on_progress=pause_after_a_megabyte,
            cancel=cancel,
            keep_partial_on_cancel=True,
        )
    partial = tmp_path / f"{MEDIUM}.incomplete"
    kept = partial.stat().st_size
    assert 1024 * KIB <= kept < len(data)
    assert scan_models(tmp_path) == []  # a partial file is never a model
    [waiting] = partial_downloads(tmp_path)
    assert (waiting.repo_id, waiting.path_in_repo) == (MEDIUM_REPO, MEDIUM)
    assert (waiting.bytes_done, waiting.bytes_total) == (kept, len(data))

    online.reset()
    events: list[DownloadProgress] = []
    path = download_model(MEDIUM_REPO, MEDIUM, tmp_path, on_progress=events.append)
    assert events[0].resumed_from == kept
    # (the paused request may still be logged late: look for the resumed one by its Range)
    [resumed] = [r for r in online.file_gets(MEDIUM) if r.range == f"bytes={kept}-"]
    assert resumed.body_bytes == len(data) - kept
    assert sha256(path.read_bytes()) == sha256(data)
    assert leftovers(tmp_path) == [] and partial_downloads(tmp_path) == []


def test_a_killed_download_resumes_when_run_again(
    online: HubServer, tmp_path: Path, project_env: dict[str, str]
) -> None:
    data = online.repos[MEDIUM_REPO].files[MEDIUM]
    online.switches.throttle_bps = 600_000  # about 4.4 s: plenty of time to kill it midway
    env = {**project_env, "HF_ENDPOINT": online.endpoint}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)
    models = tmp_path / "models"
    command = [sys.executable, "-m", "llm", "--models-dir", str(models)]
    command += ["download", MEDIUM_REPO, MEDIUM]
    partial = models / f"{MEDIUM}.incomplete"

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: partial.exists() and partial.stat().st_size >= 512 * KIB)
        assert first.poll() is None
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        first.communicate(timeout=10)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    assert not (models / MEDIUM).exists()

    online.switches.throttle_bps = None
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "resuming:" in second.stderr
    assert f"saved {models / MEDIUM} (checksum verified)" in second.stdout
    resumed = [r for r in online.file_gets(MEDIUM) if r.range == f"bytes={kept}-"]
    assert len(resumed) == 1
    assert resumed[0].body_bytes == len(data) - kept < len(data)
    assert sha256((models / MEDIUM).read_bytes()) == sha256(data)
    assert leftovers(models) == []


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_the_command_line_draws_a_progress_bar_on_a_terminal(
    online: HubServer, tmp_path: Path, project_env: dict[str, str]
) -> None:
    import fcntl
    import pty
    import struct
    import termios

    online.switches.throttle_bps = 3_000_000
    env = {**project_env, "HF_ENDPOINT": online.endpoint}
    env.pop("HF_HUB_OFFLINE", None)
    command = [sys.executable, "-m", "llm", "--models-dir", str(tmp_path)]
    command += ["download", MEDIUM_REPO, MEDIUM]
    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    with subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child_side
    ) as process:
        os.close(child_side)
        screen = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        process.wait(timeout=60)
    os.close(terminal)
    assert process.returncode == 0
    text = screen.decode("utf-8", "replace")
    assert re.search(rf"{re.escape(MEDIUM)}:\s+[1-9]\d%\|", text)  # redrawn as it goes
    assert f"{MEDIUM}: 100%" in text and "2.65M/2.65M" in text and "MB/s" in text
    assert (tmp_path / MEDIUM).exists()


def test_a_checksum_mismatch_deletes_the_file_and_says_so(
    online: HubServer, tmp_path: Path
) -> None:
    online.switches.corrupt.add(SMALL)
    events: list[DownloadProgress] = []
    with pytest.raises(ChecksumError, match=r"checksum mismatch .* deleted"):
        download_model(REPO, SMALL, tmp_path, on_progress=events.append)
    assert list(tmp_path.iterdir()) == []
    assert events[-1].state == "failed" and "checksum mismatch" in events[-1].message


def test_not_enough_disk_space_is_refused_before_downloading(
    online: HubServer, tmp_path: Path
) -> None:
    online.switches.claimed_sizes[SMALL] = 10**17  # 100 PB
    with pytest.raises(DiskFullError, match=r"not enough disk space for scripted\.Q4_K_M\.gguf"):
        download_model(REPO, SMALL, tmp_path)
    assert online.file_gets(SMALL) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_disk_that_fills_up_midway_gives_a_clear_error(online: HubServer, tmp_path: Path) -> None:
    # The partial file is a link to /dev/full, where every write fails with ENOSPC; a note
    # matching the Hub's file makes the download append to it as if resuming.
    data = online.repos[REPO].files[SMALL]
    note = {
        "repo_id": REPO,
        "path": SMALL,
        "commit": online.repos[REPO].commit,
        "size": len(data),
        "sha256": sha256(data),
        "blob_id": git_blob_id(data),
    }
    (tmp_path / f"{SMALL}.incomplete.json").write_text(json.dumps(note), encoding="utf-8")
    (tmp_path / f"{SMALL}.incomplete").symlink_to("/dev/full")
    events: list[DownloadProgress] = []
    with pytest.raises(DiskFullError, match=r"the disk is full.*free some space"):
        download_model(REPO, SMALL, tmp_path, on_progress=events.append)
    assert events[-1].state == "failed" and "disk is full" in events[-1].message
    assert not (tmp_path / SMALL).exists()


def test_a_different_file_of_the_same_name_is_not_overwritten(
    online: HubServer, tmp_path: Path
) -> None:
    (tmp_path / SMALL).write_bytes(b"my own model")
    with pytest.raises(HubError, match="already in the models folder"):
        download_model(REPO, SMALL, tmp_path)
    assert (tmp_path / SMALL).read_bytes() == b"my own model"


def test_downloading_again_only_verifies(online: HubServer, tmp_path: Path) -> None:
    download_model(REPO, SMALL, tmp_path)
    online.reset()
    path = download_model(REPO, SMALL, tmp_path)
    assert path.exists() and online.file_gets(SMALL) == []


def test_unsafe_names_are_refused_before_any_request(online: HubServer, tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileNameError, match="models folder"):
        download_model(REPO, "../../outside.gguf", tmp_path)
    assert online.requests == []
    assert list(tmp_path.iterdir()) == []


def test_a_split_model_downloads_all_its_parts(online: HubServer, tmp_path: Path) -> None:
    files = online.repos[REPO].files
    path = download_model(REPO, SPLIT[1], tmp_path)  # naming any part fetches the set
    assert path == tmp_path / "scripted-Q2_K-00001-of-00002.gguf"
    assert path.read_bytes() == files[SPLIT[0]]
    assert (tmp_path / "scripted-Q2_K-00002-of-00002.gguf").read_bytes() == files[SPLIT[1]]
    assert leftovers(tmp_path) == []


def test_the_queue_runs_one_download_at_a_time_and_cancels(
    online: HubServer, tmp_path: Path
) -> None:
    online.switches.throttle_bps = 1_000_000
    events: list[DownloadProgress] = []
    active: set[str] = set()
    overlaps: list[set[str]] = []

    def listen(event: DownloadProgress) -> None:
        events.append(event)
        if event.state in ("downloading", "verifying"):
            active.add(event.job_id)
        else:
            active.discard(event.job_id)
        if len(active) > 1:
            overlaps.append(set(active))

    queue = DownloadQueue(tmp_path, on_event=listen)
    try:
        big = queue.add(MEDIUM_REPO, MEDIUM)
        second = queue.add(REPO, SMALL_Q8)
        third = queue.add(REPO, SMALL)
        assert queue.add(REPO, SMALL_Q8) == second  # already queued
        assert queue.cancel(third) and queue.get(third).state == "cancelled"

        wait_for(lambda: queue.get(big).bytes_done > 0)
        assert queue.get(second).state == "queued"
        assert queue.cancel(big)
        assert queue.wait(big, timeout=20).state == "cancelled"
        assert not (tmp_path / f"{MEDIUM}.incomplete").exists()  # cancel discards

        done = queue.wait(second, timeout=20)
        assert done.state == "done" and done.path == str(tmp_path / SMALL_Q8)
        assert not queue.cancel(second)  # already finished
    finally:
        queue.close()
    assert overlaps == []
    assert [j.state for j in queue.jobs()] == ["cancelled", "done", "cancelled"]
    assert not any(e.job_id == third and e.state == "downloading" for e in events)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SMALL_Q8]


def test_the_queue_reports_failures_and_carries_on(online: HubServer, tmp_path: Path) -> None:
    queue = DownloadQueue(tmp_path)
    try:
        missing = queue.add(REPO, "missing.Q4_K_M.gguf")
        fine = queue.add(REPO, SMALL)
        failed = queue.wait(missing, timeout=20)
        assert failed.state == "failed" and "not found" in failed.message
        assert queue.wait(fine, timeout=20).state == "done"
    finally:
        queue.close()
    with pytest.raises(UnsafeFileNameError):
        DownloadQueue(tmp_path).add(REPO, "../x.gguf")
