"""Files uploaded from a page (a chat export to import): where they go, how big, who reads them.

Taipy's `file_selector` posts the file to `/taipy-uploads` (in parts of 1 MiB), saves it in
its upload folder, writes the saved path into a page variable and then fires the page's action.
Any client can set that variable to any path over the websocket before firing the action, so
the path is never trusted:
- uploads go to a folder of the app's own (`<data_dir>/uploads`, emptied at start), each under
  a random name the server gives it, recorded with the client that sent it;
- `take_upload` reads a file only if it is one of those, recorded for the asking tab, and a
  regular file of at most the upload limit; it deletes that file and nothing else;
- an upload bigger than `[app] max_upload_mb` is refused before it is written, part by part;
- parts of an upload that never finished are removed after `STALE_S`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, request

from llm.errors import LocalChatError

UPLOAD_ROUTE = "/taipy-uploads"
PART_BYTES = 1024 * 1024  # Taipy's front end sends files in parts of this size
FORM_OVERHEAD = 64 * 1024  # multipart headers and the other form fields of one part
STALE_S = 3600.0
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_TOKEN_NAME = re.compile(r"lc-([A-Za-z0-9_-]{22})(\.[A-Za-z0-9]{1,10})?")


class UploadError(LocalChatError):
    """An uploaded file cannot be used: too big, gone, or not this tab's upload."""


@dataclass
class _Upload:
    client_id: str
    original_name: str
    started: float


class _Uploads:
    def __init__(self) -> None:
        self.folder: Path | None = None
        self.max_bytes = 0
        self.lock = threading.Lock()
        self.in_progress: dict[tuple[str, str, int], str] = {}  # (client, name, parts) -> token
        self.done: dict[str, _Upload] = {}  # token -> upload, until its action takes it
        # client -> why its last upload was refused: Taipy's page fires the upload's action
        # whatever the server answered, and the action then says why.
        self.refused: dict[str, str] = {}


_uploads = _Uploads()


def upload_folder() -> Path:
    """The folder uploads are written to (set by `configure_uploads`)."""
    if _uploads.folder is None:
        raise RuntimeError("web.uploads.configure_uploads() was not called")
    return _uploads.folder


def configure_uploads(data_dir: str | Path, max_bytes: int) -> Path:
    """Use `<data_dir>/uploads` for uploads (emptied: leftovers of an earlier run go) and
    refuse files over `max_bytes`. Returns the folder, for Taipy's `upload_folder`."""
    folder = Path(data_dir).resolve() / "uploads"
    if folder.is_symlink():
        folder.unlink()
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    with _uploads.lock:
        _uploads.folder = folder
        _uploads.max_bytes = max_bytes
        _uploads.in_progress.clear()
        _uploads.done.clear()
        _uploads.refused.clear()
    return folder


def _refuse(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def _int_field(name: str, default: int) -> int | None:
    value = request.form.get(name)
    if value is None:
        return default
    return int(value) if value.isdigit() and len(value) < 10 else None


def _sweep(now: float) -> None:
    """Forget uploads nobody took and remove files older than STALE_S (unfinished parts)."""
    with _uploads.lock:
        for token in [t for t, u in _uploads.done.items() if now - u.started > STALE_S]:
            del _uploads.done[token]
    folder = upload_folder()
    with contextlib.suppress(OSError):
        for path in folder.iterdir():
            with contextlib.suppress(OSError):
                if now - path.lstat().st_mtime > STALE_S:
                    path.unlink()


def _check_upload() -> Response | None:
    """Before Taipy's upload handler: refuse what is too big, name the file ourselves."""
    if request.method != "POST":
        return None
    limit = _uploads.max_bytes
    client_id = request.args.get("client_id", "")
    total, part = _int_field("total", 1), _int_field("part", 0)
    size = request.content_length
    if not client_id or total is None or part is None or not 0 <= part < max(total, 1):
        return _refuse(400, "upload refused: malformed request")
    if size is None:
        return _refuse(411, "upload refused: the request must say its length")
    one_part = total <= 1
    if (total - 1) * PART_BYTES >= limit or size > (limit if one_part else PART_BYTES) + (
        FORM_OVERHEAD
    ):
        reason = f"the file is too big: files can have at most {limit // 2**20} MB"
        with _uploads.lock:
            _uploads.refused[client_id] = reason
        return _refuse(413, f"upload refused: {reason}")
    blob = request.files.get("blob")
    if blob is None or not blob.filename:
        return None  # Taipy answers it
    original = os.path.basename(blob.filename.replace("\\", "/"))[:200]
    key = (client_id, original, total)
    now = time.time()
    with _uploads.lock:
        _uploads.refused.pop(client_id, None)
        token = None if part == 0 else _uploads.in_progress.get(key)
        if token is None:
            token = secrets.token_urlsafe(16)
            _uploads.in_progress[key] = token
        if part == max(total, 1) - 1:
            del _uploads.in_progress[key]
            _uploads.done[token] = _Upload(client_id, original, now)
    if part == 0:
        _sweep(now)
    suffix = Path(original).suffix
    if not _SUFFIX.fullmatch(suffix):
        suffix = ""
    # Taipy saves the file under this name (its parts under NAME.part.N) in our folder.
    blob.filename = f"lc-{token}{suffix}"
    return None


def add_upload_guard(flask_app: Flask) -> None:
    """Check every upload before Taipy's handler writes it."""

    @flask_app.before_request
    def _guard_uploads() -> Response | None:
        if request.path != UPLOAD_ROUTE:
            return None
        return _check_upload()


def take_upload(client_id: str, value: object) -> tuple[str, bytes]:
    """The original name and content of the upload at `value` (a page variable's path), if
    that file is one this client uploaded; the file is deleted. UploadError otherwise."""
    with _uploads.lock:
        reason = _uploads.refused.pop(client_id, None)
    if reason is not None:
        raise UploadError(reason)
    refused = UploadError("the uploaded file is not available: upload it again")
    if not isinstance(value, str) or not value:
        raise refused
    path = Path(value)
    match = _TOKEN_NAME.fullmatch(path.name)
    folder = upload_folder()
    if match is None or path.parent.resolve() != folder:
        raise refused
    with _uploads.lock:
        upload = _uploads.done.get(match.group(1))
        if upload is None or upload.client_id != client_id:
            raise refused
        del _uploads.done[match.group(1)]
    target = folder / path.name
    try:
        # O_NOFOLLOW: the name is ours, but never follow a link someone put in its place.
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise refused from None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise refused
            if info.st_size > _uploads.max_bytes:
                mb = _uploads.max_bytes // (1024 * 1024)
                raise UploadError(f"{upload.original_name}: files can have at most {mb} MB")
            data = file.read(_uploads.max_bytes + 1)
    finally:
        with contextlib.suppress(OSError):
            target.unlink()
    return upload.original_name, data
