"""Downloads: one GGUF model (all parts of a split one) into the models folder, resumable and
verified (`download_model`), and the interrupted ones waiting there (`partial_downloads`).

A download is written to `<name>.incomplete` next to a `<name>.incomplete.json` note of what it
is, so an interrupted download (network drop, killed process, app restart) carries on from
where it stopped. The file becomes `<name>` only once its SHA-256 matches the Hub's LFS
metadata; a mismatch deletes it. Partial files never end in `.gguf`, so they are never listed
as models. Every failure is a `HubError` (a LocalChatError) with one plain sentence.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import filelock
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers

from ..errors import (
    ChecksumError,
    DiskFullError,
    DownloadCancelled,
    HubError,
    HubNetworkError,
    HubNotFoundError,
    UnsafeFileNameError,
)
from ..fit import fits_on_disk
from ..gguf_file import human_size
from .api import GgufModel, HubSettings, RemoteFile, hub_call, list_gguf_files
from .names import check_repo_id, safe_local_name, split_part
from .progress import ProgressCallback, Transfer, progress_bar_class

PARTIAL_SUFFIX = ".incomplete"
NOTE_SUFFIX = ".incomplete.json"
# Smaller than huggingface_hub's 10 MB: progress moves and data reaches the disk every 256 KiB,
# so a killed download loses little and a slow connection still shows movement.
CHUNK_SIZE = 256 * 1024


def _destination(folder: Path, local_name: str) -> Path:
    """The path of `local_name` in `folder`, checked to be directly inside it."""
    path = folder / local_name
    if path.resolve().parent != folder.resolve():
        raise UnsafeFileNameError(
            f"refusing to download {local_name!r}: it would be written outside {folder}"
        )
    return path


@dataclass(frozen=True)
class _Part:
    remote: RemoteFile
    final: Path
    partial: Path
    note: Path

    def note_data(self, repo_id: str, commit: str) -> dict[str, Any]:
        return {
            "repo_id": repo_id,
            "path": self.remote.path,
            "commit": commit,
            "size": self.remote.size_bytes,
            "sha256": self.remote.sha256,
            "blob_id": self.remote.blob_id,
        }

    def partial_size(self) -> int:
        """Bytes of the partial file on disk (0 when there is none)."""
        try:
            return self.partial.stat().st_size
        except FileNotFoundError:
            return 0


@dataclass(frozen=True)
class PartialDownload:
    """An interrupted download waiting in the models folder."""

    repo_id: str
    path_in_repo: str  # what to pass to download_model / DownloadQueue.add to resume it
    file_name: str
    bytes_done: int
    bytes_total: int


def _parts_of(folder: Path, model: GgufModel) -> list[_Part]:
    names = [safe_local_name(f.path) for f in model.files]
    if len(set(names)) != len(names):
        raise UnsafeFileNameError(f"{model.file_name}: two parts would get the same file name")
    parts = []
    for remote, name in zip(model.files, names, strict=True):
        final = _destination(folder, name)
        parts.append(
            _Part(
                remote,
                final,
                folder / f"{name}{PARTIAL_SUFFIX}",
                folder / f"{name}{NOTE_SUFFIX}",
            )
        )
    return parts


def _read_note(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same_file(note: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether a partial file was started for the very same remote file (commits may differ)."""
    keys = ("repo_id", "path", "size", "sha256", "blob_id")
    return note is not None and all(note.get(k) == wanted[k] for k in keys)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _digest_matches(path: Path, remote: RemoteFile, transfer: Transfer) -> tuple[bool, str]:
    """Hash the file: SHA-256 against the LFS metadata (or the git blob id for small files)."""
    if remote.sha256:
        hasher, expected = hashlib.sha256(), remote.sha256.lower()
    else:
        # Files stored in git itself (no LFS) are identified by the sha1 of "blob <size>\0" + data.
        hasher, expected = hashlib.sha1(b"blob %d\0" % path.stat().st_size), remote.blob_id or ""
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
            transfer.check_cancel()
    return hasher.hexdigest() == expected, hasher.hexdigest()


def _append_missing_bytes(
    part: _Part, url: str, headers: dict[str, str], transfer: Transfer, bar: type
) -> None:
    """Append the missing bytes of one file to its partial file."""
    have = part.partial_size()
    if have >= part.remote.size_bytes:
        return
    constants.DOWNLOAD_CHUNK_SIZE = CHUNK_SIZE  # huggingface_hub reads it on every download
    # http_get resumes with a Range request from `have` and retries dropped connections itself.
    with part.partial.open("ab") as stream:
        try:
            http_get(
                url,
                stream,
                resume_size=have,
                headers=headers,
                expected_size=part.remote.size_bytes,
                displayed_filename=part.final.name,
                tqdm_class=bar,
            )
        except OSError as exc:
            if isinstance(exc, HfHubHTTPError) or exc.errno is not None:
                raise  # an HTTP error (worded by hub_call) or a disk error (ENOSPC...)
            # http_get's "Consistency check failed": the server sent fewer or more bytes
            raise HubNetworkError(
                f"the download of {part.final.name} came out the wrong size; "
                "download again to resume"
            ) from exc


def download_model(
    repo_id: str,
    file_name: str,
    models_dir: str | Path,
    *,
    revision: str | None = None,
    settings: HubSettings | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    keep_partial_on_cancel: bool = False,
    show_bar: bool = False,
    job_id: str = "",
) -> Path:
    """Download a GGUF model (all parts of a split one) into `models_dir`; return its path.

    Resumes a partial download of the same file; checks the SHA-256 before the file takes its
    name; deletes it on a mismatch. `on_progress` gets DownloadProgress events (from this
    thread). Setting `cancel` stops the download; the partial file is deleted unless
    `keep_partial_on_cancel` (or a CancelEvent's `keep_partial`) keeps it for a later resume.
    `show_bar` draws a tqdm bar on a terminal.
    """
    settings = settings or HubSettings.from_env()
    check_repo_id(repo_id)
    local_name = safe_local_name(file_name)  # refuse bad names before any request
    folder = Path(models_dir).expanduser()
    transfer = Transfer(job_id, repo_id, local_name, on_progress, cancel)
    parts: list[_Part] = []
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HubError(f"cannot create the models folder {folder}: {exc.strerror}") from None
        listing = list_gguf_files(repo_id, revision=revision, settings=settings)
        model = next((m for m in listing.models if file_name in [f.path for f in m.files]), None)
        if model is None:
            raise HubNotFoundError(f"file {file_name} not found in {repo_id}")
        if model.parts > 1 and (split_part(model.file_name) or ("", 0, 0))[2] != model.parts:
            raise HubNotFoundError(f"{model.name}: some parts are missing from {repo_id}")
        if any(f.size_bytes <= 0 for f in model.files):
            raise HubError(f"the Hub did not give the size of {file_name} in {repo_id}")
        if not all(f.sha256 or f.blob_id for f in model.files):
            raise HubError(f"the Hub gave no checksum for {file_name}: refusing an unchecked file")
        commit = listing.commit or revision or "main"
        parts = _parts_of(folder, model)
        transfer.file_name = parts[0].final.name  # a split model is named by its first part
        with _folder_lock(folder, parts[0].final.name):
            path = _download_parts(repo_id, commit, parts, settings, transfer, show_bar)
    except DownloadCancelled as exc:
        if not (keep_partial_on_cancel or getattr(cancel, "keep_partial", False)):
            for part in parts:
                _remove(part.partial, part.note)
        transfer.emit("cancelled", force=True, message=str(exc))
        raise
    except HubError as exc:
        transfer.emit("failed", force=True, message=str(exc), error_code=exc.code)
        raise
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            message = f"cannot write {local_name} in {folder}: {exc.strerror or exc}"
            transfer.emit("failed", force=True, message=message, error_code=HubError.code)
            raise HubError(message) from exc
        message = (
            f"the disk is full: {local_name} stopped at {human_size(transfer.done)} of "
            f"{human_size(transfer.total)}; free some space and download again to resume"
        )
        transfer.emit("failed", force=True, message=message, error_code=DiskFullError.code)
        raise DiskFullError(message) from exc
    transfer.emit("done", force=True, message="checksum verified", path=str(path))
    return path


@contextlib.contextmanager
def _folder_lock(folder: Path, name: str) -> Iterator[None]:
    """One download of a file at a time, across threads and processes (app and command line)."""
    lock_path = folder / f"{name}.lock"
    lock = filelock.FileLock(str(lock_path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise HubError(f"{name} is already being downloaded (by another LocalChat)") from None
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):
            lock_path.unlink()


def _download_parts(
    repo_id: str,
    commit: str,
    parts: list[_Part],
    settings: HubSettings,
    transfer: Transfer,
    show_bar: bool,
) -> Path:
    """Fetch what is missing of each part, verify every part, then give them their names."""
    pending, already = _pending_parts(repo_id, commit, parts)
    total = sum(p.remote.size_bytes for p in pending)
    _check_disk_space(parts[0].final, total - already)
    transfer.start(total, already)
    bar = progress_bar_class(transfer, show_bar)
    for part in pending:
        _fetch_part(part, repo_id, commit, settings, transfer, bar)
    transfer.emit("verifying", force=True)
    for part in parts:
        _verify_part(part, transfer)
    # Rename the first part last, so a split model is loadable only once it is all there.
    for part in reversed(parts):
        if not part.final.exists():
            os.replace(part.partial, part.final)
        _remove(part.note)
    return parts[0].final


def _pending_parts(repo_id: str, commit: str, parts: list[_Part]) -> tuple[list[_Part], int]:
    """The parts still to fetch (a finished model file is only verified), and the bytes of
    them already on disk; partial files that cannot be resumed are deleted."""
    pending = []
    already = 0
    for part in parts:
        if part.final.exists():
            continue
        wanted = part.note_data(repo_id, commit)
        if part.partial.exists() and not _same_file(_read_note(part.note), wanted):
            _remove(part.partial)  # left by a download of another file or version
        if part.partial_size() > part.remote.size_bytes:
            _remove(part.partial)
        already += part.partial_size()
        pending.append(part)
    return pending, already


def _check_disk_space(first: Path, needed: int) -> None:
    free = shutil.disk_usage(first.parent).free
    if not fits_on_disk(needed, free):
        raise DiskFullError(
            f"not enough disk space for {first.name}: needs "
            f"{human_size(needed)}, {human_size(free)} free in {first.parent}"
        )


def _fetch_part(
    part: _Part,
    repo_id: str,
    commit: str,
    settings: HubSettings,
    transfer: Transfer,
    bar: type,
) -> None:
    """Append the missing bytes of one part to its partial file and check its size."""
    url = hf_hub_url(repo_id, part.remote.path, revision=commit, endpoint=settings.endpoint)
    with hub_call(settings, repo_id, part.remote.path, commit):
        if part.partial_size() < part.remote.size_bytes:
            location, headers = _source(part, url, settings)
            # Say what the partial file is, so a later run (even another process) resumes it.
            note = json.dumps(part.note_data(repo_id, commit), indent=1)
            part.note.write_text(note, encoding="utf-8")
            _append_missing_bytes(part, location, headers, transfer, bar)
        size = part.partial_size()
        if size != part.remote.size_bytes:
            raise HubNetworkError(
                f"the download of {part.final.name} ended at {size} of "
                f"{part.remote.size_bytes} bytes; download again to resume"
            )


def _source(part: _Part, url: str, settings: HubSettings) -> tuple[str, dict[str, str]]:
    """Where the bytes of `part` come from (the Hub may redirect to a CDN), with the headers
    to send there; refuses a file whose size changed since it was listed."""
    headers = build_hf_headers(token=settings.token, library_name="localchat")
    meta = get_hf_file_metadata(url, token=settings.token, endpoint=settings.endpoint)
    if meta.size is not None and meta.size != part.remote.size_bytes:
        raise HubError(
            f"{part.remote.path} changed on the Hub while LocalChat read it "
            f"({meta.size} bytes, listed as {part.remote.size_bytes}); try again"
        )
    location = meta.location or url
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)  # never send the token to a CDN
    return location, headers


def _verify_part(part: _Part, transfer: Transfer) -> None:
    """Check a part's checksum; a corrupted download is deleted."""
    path = part.final if part.final.exists() else part.partial
    ok, got = _digest_matches(path, part.remote, transfer)
    if ok:
        return
    expected = part.remote.sha256 or part.remote.blob_id or ""
    if path == part.final:
        raise HubError(
            f"a different {part.final.name} is already in the models folder "
            "(its checksum differs from the Hub's); rename or delete it first"
        )
    _remove(part.partial, part.note)
    raise ChecksumError(
        f"checksum mismatch for {part.final.name}: expected {expected[:16]}…, got "
        f"{got[:16]}…; the corrupted download was deleted, please download it again"
    )


def partial_downloads(models_dir: str | Path) -> list[PartialDownload]:
    """Interrupted downloads in the models folder (download them again to resume)."""
    folder = Path(models_dir).expanduser()
    if not folder.is_dir():
        return []
    found = []
    for note_path in sorted(folder.glob(f"*{NOTE_SUFFIX}")):
        note = _read_note(note_path)
        name = note_path.name.removesuffix(NOTE_SUFFIX)
        if not note or not isinstance(note.get("repo_id"), str) or not note.get("path"):
            continue
        partial = folder / f"{name}{PARTIAL_SUFFIX}"
        if not partial.exists():
            continue
        done = partial.stat().st_size
        found.append(
            PartialDownload(note["repo_id"], str(note["path"]), name, done, int(note["size"]))
        )
    return found


def discard_partial(models_dir: str | Path, file_name: str) -> None:
    """Delete an interrupted download (`file_name` as in the models folder)."""
    name = safe_local_name(file_name)
    folder = Path(models_dir).expanduser()
    _remove(folder / f"{name}{PARTIAL_SUFFIX}", folder / f"{name}{NOTE_SUFFIX}")
