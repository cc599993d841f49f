"""The Hugging Face Hub: find GGUF models, size them up against this machine, download them.

All huggingface_hub use lives in this module. It offers:

- `search_models` (GGUF repositories, most downloaded first) and `list_gguf_files` (a
  repository's `.gguf` files with sizes, checksums and quantization; split files
  `-00001-of-00003.gguf` form one model);
- `machine_status`, `fit_of` / `check_fit` (with `ram_needed`): does a file fit in RAM
  (fits / tight / does not fit) and on disk;
- `download_model`: one download into the models folder, resumable and verified, with progress
  events (and a tqdm bar on a terminal); `DownloadQueue`: several downloads, one at a time,
  cancellable, for the web page; `partial_downloads` lists interrupted ones.

A download is written to `<name>.incomplete` next to a `<name>.incomplete.json` note of what it
is, so an interrupted download (network drop, killed process, app restart) carries on from
where it stopped. The file becomes `<name>` only once its SHA-256 matches the Hub's LFS
metadata; a mismatch deletes it. Partial files never end in `.gguf`, so they are never listed
as models. Every failure is a `HubError` (a LocalChatError) with one plain sentence.

Environment (read on every call, not only at import): HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import filelock
import httpx2
import psutil
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    FileMetadataError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers
from tqdm.auto import tqdm

from .catalog import Catalog
from .errors import LocalChatError
from .gguf_file import human_size

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
PARTIAL_SUFFIX = ".incomplete"
NOTE_SUFFIX = ".incomplete.json"
# Smaller than huggingface_hub's 10 MB: progress moves and data reaches the disk every 256 KiB,
# so a killed download loses little and a slow connection still shows movement.
CHUNK_SIZE = 256 * 1024
DISK_RESERVE = 100 * 1000 * 1000  # leave this much free after a download
RAM_HEADROOM = 0.9  # use at most this share of free (fits) or total (tight) memory
PROGRESS_INTERVAL = 0.1  # seconds between progress events (state changes are always sent)

STATES = ("queued", "downloading", "verifying", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")


# --- errors -------------------------------------------------------------------------------
class HubError(LocalChatError):
    """The Hub could not give us a model: the reason is in the message."""


class HubNotFoundError(HubError):
    """No such repository, revision or file (HTTP 404)."""


class HubAccessError(HubError):
    """Gated or private repository, or a refused token (HTTP 401/403)."""


class HubNetworkError(HubError):
    """The Hub cannot be reached, or answered with a server error."""


class HubOfflineError(HubNetworkError):
    """HF_HUB_OFFLINE is set."""


class DiskFullError(HubError):
    """Not enough free disk space in the models folder."""


class ChecksumError(HubError):
    """The downloaded bytes do not match the Hub's SHA-256; the file was deleted."""


class DownloadCancelled(HubError):
    """The user cancelled the download."""


class UnsafeFileNameError(HubError):
    """A file name that would land outside the models folder, or is not a .gguf file."""


# --- settings -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSettings:
    """Where the Hub is and how to talk to it."""

    endpoint: str = DEFAULT_ENDPOINT
    token: str | None = None  # None: huggingface_hub's saved login, if any
    offline: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> HubSettings:
        """HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE as they are now."""
        env = os.environ if environ is None else environ
        offline = (env.get("HF_HUB_OFFLINE") or "").strip().upper() in ("1", "ON", "YES", "TRUE")
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            token=env.get("HF_TOKEN") or None,
            offline=offline,
        )


# --- names ----------------------------------------------------------------------------------
_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)|Q[2-8]_K(?:_XL|_[SML])?|Q[4-8]_[01]|TQ[12]_0|MXFP4|BF16|FP?16|F32"
    r"|Q[2-8]"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
MAX_QUERY_CHARS = 200
# Unicode's explicit direction marks, embeddings, overrides and isolates.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def parse_quantization(file_name: str) -> str:
    """The quantization named in a GGUF file name ("Q4_K_M", "IQ2_XS", "F16"), or ""."""
    stem = Path(file_name).name
    match = _QUANT_RE.search(stem.removesuffix(".gguf").removesuffix(".GGUF"))
    if not match:
        return ""
    quant = match.group(1).upper()
    return "F16" if quant == "FP16" else quant


def split_part(file_name: str) -> tuple[str, int, int] | None:
    """`model-Q8_0-00002-of-00003.gguf` -> ("model-Q8_0", 2, 3); None for a single file."""
    match = _SPLIT_RE.match(file_name)
    if not match:
        return None
    return match["stem"], int(match["index"]), int(match["count"])


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it has the form owner/name; else raise HubError saying so."""
    if not isinstance(repo_id, str) or not _REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise HubError(f"not a Hugging Face repository id: {repo_id!r} (expected owner/name)")
    return repo_id


def safe_local_name(file_name: str) -> str:
    """The name a repository file gets in the models folder (its last path part).

    Refused: absolute paths, `..` or empty parts, backslashes, control characters, hidden
    names, and anything that is not a `.gguf` file.
    """
    refusal = f"refusing to download {file_name!r}"
    if not isinstance(file_name, str) or not file_name.strip():
        raise UnsafeFileNameError("no file name given")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in file_name) or "\\" in file_name:
        raise UnsafeFileNameError(f"{refusal}: the name contains a control character or '\\'")
    if any(ch in _BIDI_CONTROLS for ch in file_name):
        # U+202E and friends reorder the text around them: "x\u202egguf.exe" shows as
        # "xexe.fugg", so a name could show as something it is not.
        raise UnsafeFileNameError(
            f"{refusal}: the name contains a Unicode direction control, which can make it "
            "display as something else"
        )
    if file_name.startswith("/") or re.match(r"^[A-Za-z]:", file_name):
        raise UnsafeFileNameError(f"{refusal}: absolute paths would escape the models folder")
    parts = file_name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeFileNameError(
            f"{refusal}: '.', '..' or empty path parts could escape the models folder"
        )
    name = parts[-1]
    if name.startswith("."):
        raise UnsafeFileNameError(f"{refusal}: hidden file names are not allowed")
    if not name.endswith(".gguf"):
        raise UnsafeFileNameError(f"{refusal}: only .gguf model files can be downloaded")
    if len(name.encode("utf-8")) > 240:
        raise UnsafeFileNameError(f"{refusal}: the file name is too long")
    return name


def _destination(folder: Path, local_name: str) -> Path:
    """The path of `local_name` in `folder`, checked to be directly inside it."""
    path = folder / local_name
    if path.resolve().parent != folder.resolve():
        raise UnsafeFileNameError(
            f"refusing to download {local_name!r}: it would be written outside {folder}"
        )
    return path


# --- the Hub's answers ----------------------------------------------------------------------
@dataclass(frozen=True)
class RepoSummary:
    """A search result: one GGUF repository."""

    repo_id: str
    author: str
    downloads: int
    likes: int
    gated: bool
    last_modified: str  # ISO 8601, or ""
    tags: tuple[str, ...]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository, as the Hub describes it."""

    path: str  # inside the repository
    size_bytes: int
    sha256: str | None  # from the LFS metadata
    blob_id: str | None  # git object id (checks small non-LFS files)

    @property
    def local_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class GgufModel:
    """A downloadable model: one `.gguf` file, or the parts of a split one."""

    repo_id: str
    file_name: str  # path in the repository of the (first) file: what to download
    name: str  # for display
    quantization: str
    size_bytes: int  # all parts together
    files: tuple[RemoteFile, ...]

    @property
    def parts(self) -> int:
        return len(self.files)

    @property
    def local_name(self) -> str:
        """The file name the model gets in the models folder (first part of a split model)."""
        return self.files[0].local_name

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "file_name": self.file_name,
            "name": self.name,
            "quantization": self.quantization,
            "size_bytes": self.size_bytes,
            "parts": self.parts,
            "local_name": self.local_name,
        }


@dataclass(frozen=True)
class RepoListing:
    """What a repository holds for LocalChat."""

    repo_id: str
    commit: str | None
    gated: bool
    private: bool
    models: tuple[GgufModel, ...]


def group_gguf_files(repo_id: str, files: Sequence[RemoteFile]) -> tuple[GgufModel, ...]:
    """Single `.gguf` files and split sets (all parts together), smallest first."""
    singles: list[GgufModel] = []
    sets: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    for file in files:
        if not file.path.lower().endswith(".gguf"):
            continue
        split = split_part(file.path)
        if split is None:
            singles.append(
                GgufModel(
                    repo_id,
                    file.path,
                    file.local_name,
                    parse_quantization(file.path),
                    file.size_bytes,
                    (file,),
                )
            )
        else:
            stem, index, count = split
            sets.setdefault((stem, count), {})[index] = file
    for (stem, count), parts in sets.items():
        ordered = tuple(parts[i] for i in sorted(parts))
        found = "" if len(parts) == count else f", {len(parts)} found"
        singles.append(
            GgufModel(
                repo_id,
                ordered[0].path,
                f"{stem.rsplit('/', 1)[-1]}.gguf ({count} parts{found})",
                parse_quantization(stem),
                sum(f.size_bytes for f in ordered),
                ordered,
            )
        )
    return tuple(sorted(singles, key=lambda m: (m.size_bytes, m.file_name.lower())))


def _api(settings: HubSettings) -> HfApi:
    return HfApi(endpoint=settings.endpoint, token=settings.token, library_name="localchat")


@contextlib.contextmanager
def _hub_call(
    settings: HubSettings, repo_id: str = "", file_name: str = "", revision: str | None = None
) -> Iterator[None]:
    """Run Hub requests; turn whatever they raise into one plain HubError."""
    if settings.offline:
        raise HubOfflineError(
            "offline mode: HF_HUB_OFFLINE is set, so LocalChat does not contact the Hub; "
            "unset it to search or download models"
        )
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; follow the environment as it is now.
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        error = _translate(exc, settings, repo_id, file_name, revision)
        if error is None:
            raise
        raise error from exc


def _translate(
    exc: Exception, settings: HubSettings, repo_id: str, file_name: str, revision: str | None
) -> HubError | None:
    where = settings.endpoint
    if isinstance(exc, OfflineModeIsEnabled):
        return HubOfflineError("offline mode: HF_HUB_OFFLINE is set; unset it to use the Hub")
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        if settings.token:
            how = "HF_TOKEN is set, but its account has not been granted access yet"
        else:
            how = "set HF_TOKEN to an access token of the account that accepted it"
        return HubAccessError(
            f"{repo_id} is a gated model: accept its license at {where}/{repo_id}, then {how}"
        )
    if isinstance(exc, RepositoryNotFoundError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401 and settings.token:
            return HubAccessError(
                f"repository {repo_id} not found on {where}, or HF_TOKEN cannot read it"
            )
        return HubNotFoundError(
            f"repository {repo_id} not found on {where} (if it is private, set HF_TOKEN "
            "to an access token that can read it)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubNotFoundError(f"revision {revision or 'main'} not found in {repo_id}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return HubNotFoundError(f"file {file_name} not found in {repo_id}")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        if status == 401:
            if settings.token:
                return HubAccessError("the Hub refused the access token in HF_TOKEN")
            return HubAccessError(f"{repo_id} needs a login: set HF_TOKEN to an access token")
        if status == 403:
            return HubAccessError(
                f"access to {repo_id} is denied (403): accept its license on the Hub and set "
                "HF_TOKEN to an access token with read access"
            )
        if status == 429:
            return HubNetworkError("the Hub is rate-limiting requests; try again in a minute")
        if status >= 500:
            return HubNetworkError(f"the Hub answered with error {status}; try again later")
        return HubError(f"the Hub answered with error {status} for {repo_id or where}")
    if isinstance(exc, httpx2.TransportError):
        reason = str(exc) or type(exc).__name__
        return HubNetworkError(
            f"cannot reach {where}: {reason} (check the network connection or HF_ENDPOINT)"
        )
    if isinstance(exc, HFValidationError):
        return HubError(f"not a Hugging Face repository id: {repo_id!r}: {exc}")
    if isinstance(exc, FileMetadataError):
        return HubError(f"{where} did not answer like the Hugging Face Hub: {exc}")
    return None  # e.g. a file system error: download_model words those itself


def search_models(
    query: str = "", *, limit: int = 20, settings: HubSettings | None = None
) -> list[RepoSummary]:
    """GGUF repositories whose name contains `query`, most downloaded first."""
    settings = settings or HubSettings.from_env()
    if not 1 <= limit <= 1000:
        raise HubError(f"search limit {limit} is out of range (1 to 1000)")
    if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS:
        raise HubError(f"a search can have at most {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in query):
        raise HubError("a search cannot contain control characters")
    with _hub_call(settings):
        found = list(
            _api(settings).list_models(
                search=query.strip() or None, filter="gguf", sort="downloads", limit=limit
            )
        )
    return [
        RepoSummary(
            repo_id=m.id,
            author=m.author or m.id.split("/")[0],
            downloads=m.downloads or 0,
            likes=m.likes or 0,
            gated=bool(m.gated),
            last_modified=m.last_modified.isoformat() if m.last_modified else "",
            tags=tuple(m.tags or ()),
        )
        for m in found
    ]


def list_gguf_files(
    repo_id: str, *, revision: str | None = None, settings: HubSettings | None = None
) -> RepoListing:
    """A repository's GGUF models with sizes, checksums and quantization."""
    settings = settings or HubSettings.from_env()
    check_repo_id(repo_id)
    with _hub_call(settings, repo_id, revision=revision):
        info = _api(settings).model_info(repo_id, revision=revision, files_metadata=True)
    files = [
        RemoteFile(s.rfilename, s.size or 0, s.lfs.sha256 if s.lfs else None, s.blob_id)
        for s in info.siblings or []
    ]
    return RepoListing(
        repo_id=info.id,
        commit=info.sha,
        gated=bool(info.gated),
        private=bool(info.private),
        models=group_gguf_files(info.id, files),
    )


# --- this machine ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """Memory and disk space right now."""

    ram_total: int
    ram_available: int
    disk_free: int
    models_dir: str


def machine_status(models_dir: str | Path) -> Machine:
    """RAM (psutil) and free disk space where the models folder is (or will be)."""
    folder = Path(models_dir).expanduser().resolve()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    memory = psutil.virtual_memory()
    return Machine(memory.total, memory.available, shutil.disk_usage(existing).free, str(folder))


def ram_needed(
    repo_id: str, file_name: str, size_bytes: int, catalog: Catalog | None = None
) -> tuple[int, bool]:
    """(bytes, estimated): the catalog's figure when it knows the file, else an estimate.

    The estimate adds 15% of the file size for the KV cache and buffers (the catalog's models
    range from 7% to 67% at a 4096-token context, most between 10% and 25%).
    """
    entry = catalog.find(repo_id, file_name.rsplit("/", 1)[-1]) if catalog else None
    if entry is not None:
        return entry.ram_bytes, False
    return size_bytes + size_bytes * 15 // 100, True


@dataclass(frozen=True)
class Fit:
    """Whether a model file suits this machine."""

    ram: str  # "fits" | "tight" | "does_not_fit"
    ram_needed: int
    ram_estimated: bool
    disk_ok: bool
    disk_needed: int
    disk_free: int
    message: str

    @property
    def label(self) -> str:
        return self.ram.replace("_", " ")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "label": self.label}


def check_fit(
    size_bytes: int,
    machine: Machine,
    *,
    ram_bytes: int | None = None,
    ram_estimated: bool = False,
    already_bytes: int = 0,
) -> Fit:
    """fits: within 90% of free memory; tight: within 90% of all memory (close other
    programs first); does_not_fit: more than that. Disk: the rest of the file plus a reserve."""
    needed = ram_bytes if ram_bytes is not None else size_bytes
    about = "about " if ram_estimated else ""
    if needed <= machine.ram_available * RAM_HEADROOM:
        ram = "fits"
        text = f"fits: needs {about}{human_size(needed)} of RAM"
        text += f", {human_size(machine.ram_available)} free"
    elif needed <= machine.ram_total * RAM_HEADROOM:
        ram = "tight"
        text = f"tight: needs {about}{human_size(needed)} of RAM, only "
        text += f"{human_size(machine.ram_available)} free now; close other programs first"
    else:
        ram = "does_not_fit"
        text = f"does not fit: needs {about}{human_size(needed)} of RAM, this machine has "
        text += f"{human_size(machine.ram_total)}"
    disk_needed = max(size_bytes - already_bytes, 0)
    disk_ok = disk_needed + DISK_RESERVE <= machine.disk_free
    if not disk_ok:
        text += (
            f"; not enough disk space: needs {human_size(disk_needed)}, "
            f"{human_size(machine.disk_free)} free"
        )
    return Fit(ram, needed, ram_estimated, disk_ok, disk_needed, machine.disk_free, text)


def fit_of(model: GgufModel, machine: Machine, catalog: Catalog | None = None) -> Fit:
    """The verdict for a listed model: catalog RAM figure if known, else an estimate."""
    ram, estimated = ram_needed(model.repo_id, model.file_name, model.size_bytes, catalog)
    return check_fit(model.size_bytes, machine, ram_bytes=ram, ram_estimated=estimated)


# --- progress -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadProgress:
    """One progress event: where a download stands.

    state: queued | downloading | verifying | done | failed | cancelled. `message` holds the
    error for failed ones; `path` the model file once done.
    """

    job_id: str
    repo_id: str
    file_name: str  # the model's file name in the models folder
    state: str
    bytes_done: int = 0
    bytes_total: int = 0
    mb_per_s: float = 0.0  # decimal megabytes per second over the last few seconds
    eta_s: float | None = None  # seconds left at that speed
    resumed_from: int = 0  # bytes that were already on disk when this run started
    message: str = ""
    path: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "percent": round(self.percent, 1)}


ProgressCallback = Callable[[DownloadProgress], None]


class _Transfer:
    """Counts the bytes of one download, measures speed, honours cancel, emits events."""

    def __init__(
        self,
        job_id: str,
        repo_id: str,
        file_name: str,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.job_id, self.repo_id, self.file_name = job_id, repo_id, file_name
        self.on_progress = on_progress
        self.cancel = cancel
        self.state = "queued"
        self.total = self.done = self.resumed_from = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._last_emit = 0.0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(f"download of {self.file_name} cancelled")

    def start(self, total: int, already: int) -> None:
        self.total, self.done, self.resumed_from = total, already, already
        self._samples.clear()
        self._samples.append((time.monotonic(), already))
        self.emit("downloading", force=True)

    def advance(self, n: int) -> None:
        self.check_cancel()
        self.done += n
        now = time.monotonic()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 5.0:
            self._samples.popleft()
        self.emit("downloading", force=self.done >= self.total)

    def speed(self) -> float:
        """Bytes per second over the last few seconds."""
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 >= 0.2 else 0.0

    def snapshot(self, message: str = "", path: str = "") -> DownloadProgress:
        rate = self.speed() if self.state == "downloading" else 0.0
        left = max(self.total - self.done, 0)
        return DownloadProgress(
            job_id=self.job_id,
            repo_id=self.repo_id,
            file_name=self.file_name,
            state=self.state,
            bytes_done=self.done,
            bytes_total=self.total,
            mb_per_s=round(rate / 1e6, 2),
            eta_s=round(left / rate, 1) if rate > 0 else None,
            resumed_from=self.resumed_from,
            message=message,
            path=path,
        )

    def emit(self, state: str, *, force: bool = False, message: str = "", path: str = "") -> None:
        now = time.monotonic()
        if state == self.state and not force and now - self._last_emit < PROGRESS_INTERVAL:
            return
        self.state, self._last_emit = state, now
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.snapshot(message, path))
        except Exception:  # a broken listener must not break the download
            log.exception("download progress callback failed")


def _bar_class(transfer: _Transfer, show_bar: bool) -> type[tqdm]:
    """A tqdm subclass for huggingface_hub's `tqdm_class`: every update feeds `transfer`
    (events, cancel); the bar itself is drawn only when asked and on a terminal."""

    class ProgressBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = None if show_bar else True  # None: draw on a terminal only
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            transfer.advance(int(n or 0))
            return super().update(n)

    return ProgressBar


# --- downloads ------------------------------------------------------------------------------
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


def _digest_matches(path: Path, remote: RemoteFile, transfer: _Transfer) -> tuple[bool, str]:
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


def _fetch(part: _Part, url: str, headers: dict[str, str], transfer: _Transfer, bar: type) -> None:
    """Append the missing bytes of one file to its partial file."""
    have = part.partial.stat().st_size if part.partial.exists() else 0
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
                raise  # an HTTP error (worded by _hub_call) or a disk error (ENOSPC...)
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
    transfer = _Transfer(job_id, repo_id, local_name, on_progress, cancel)
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
        transfer.emit("failed", force=True, message=str(exc))
        raise
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            message = f"cannot write {local_name} in {folder}: {exc.strerror or exc}"
            transfer.emit("failed", force=True, message=message)
            raise HubError(message) from exc
        message = (
            f"the disk is full: {local_name} stopped at {human_size(transfer.done)} of "
            f"{human_size(transfer.total)}; free some space and download again to resume"
        )
        transfer.emit("failed", force=True, message=message)
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
    transfer: _Transfer,
    show_bar: bool,
) -> Path:
    pending = []  # parts still to fetch and verify (a finished model file is only verified)
    already = 0
    for part in parts:
        if part.final.exists():
            continue
        wanted = part.note_data(repo_id, commit)
        if part.partial.exists() and not _same_file(_read_note(part.note), wanted):
            _remove(part.partial)  # left by a download of another file or version
        have = part.partial.stat().st_size if part.partial.exists() else 0
        if have > part.remote.size_bytes:
            _remove(part.partial)
            have = 0
        already += have
        pending.append(part)
    total = sum(p.remote.size_bytes for p in pending)
    free = shutil.disk_usage(parts[0].final.parent).free
    if total - already + DISK_RESERVE > free:
        raise DiskFullError(
            f"not enough disk space for {parts[0].final.name}: needs "
            f"{human_size(total - already)}, {human_size(free)} free in {parts[0].final.parent}"
        )
    transfer.start(total, already)
    bar = _bar_class(transfer, show_bar)
    for part in pending:
        url = hf_hub_url(repo_id, part.remote.path, revision=commit, endpoint=settings.endpoint)
        with _hub_call(settings, repo_id, part.remote.path, commit):
            have = part.partial.stat().st_size if part.partial.exists() else 0
            if have < part.remote.size_bytes:
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
                # Say what the partial file is, so a later run (even another process) resumes it.
                note = json.dumps(part.note_data(repo_id, commit), indent=1)
                part.note.write_text(note, encoding="utf-8")
                _fetch(part, location, headers, transfer, bar)
            try:
                size = part.partial.stat().st_size
            except FileNotFoundError:
                size = -1
            if size != part.remote.size_bytes:
                raise HubNetworkError(
                    f"the download of {part.final.name} ended at {max(size, 0)} of "
                    f"{part.remote.size_bytes} bytes; download again to resume"
                )
    transfer.emit("verifying", force=True)
    for part in parts:
        path = part.final if part.final.exists() else part.partial
        ok, got = _digest_matches(path, part.remote, transfer)
        if ok:
            continue
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
    # Rename the first part last, so a split model is loadable only once it is all there.
    for part in reversed(parts):
        if not part.final.exists():
            os.replace(part.partial, part.final)
        _remove(part.note)
    return parts[0].final


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


# --- the queue ------------------------------------------------------------------------------
class CancelEvent(threading.Event):
    """A cancel flag that also says whether to keep the partial file (pause) or delete it."""

    keep_partial = False

    def cancel(self, *, keep_partial: bool = False) -> None:
        self.keep_partial = keep_partial
        self.set()


@dataclass
class _Job:
    job_id: str
    repo_id: str
    file_name: str
    revision: str | None
    progress: DownloadProgress
    cancel: CancelEvent = dataclasses.field(default_factory=CancelEvent)
    finished: threading.Event = dataclasses.field(default_factory=threading.Event)


class DownloadQueue:
    """Downloads in the background, one at a time; any number wait their turn.

    Listeners (`on_event`, `subscribe`) get every DownloadProgress from the worker thread,
    about ten a second while a download runs; `jobs()` gives the current state of all.
    """

    def __init__(
        self,
        models_dir: str | Path,
        *,
        settings: HubSettings | None = None,
        on_event: ProgressCallback | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self._settings = settings  # None: read the environment at each download
        self._listeners: list[ProgressCallback] = [on_event] if on_event else []
        self._jobs: dict[str, _Job] = {}
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def subscribe(self, listener: ProgressCallback) -> None:
        self._listeners.append(listener)

    def add(self, repo_id: str, file_name: str, *, revision: str | None = None) -> str:
        """Queue a download; returns its job id (the same id if it is already queued)."""
        check_repo_id(repo_id)
        local_name = safe_local_name(file_name)
        with self._lock:
            if self._closed:
                raise HubError("the download queue is closed")
            for job in self._jobs.values():
                same = (job.repo_id, job.file_name) == (repo_id, file_name)
                if same and not job.progress.finished:
                    return job.job_id
            job_id = uuid.uuid4().hex[:12]
            progress = DownloadProgress(job_id, repo_id, local_name, "queued")
            job = _Job(job_id, repo_id, file_name, revision, progress)
            self._jobs[job_id] = job
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="localchat-downloads", daemon=True
                )
                self._thread.start()
        self._publish(job, progress)
        self._pending.put(job_id)
        return job_id

    def cancel(self, job_id: str, *, keep_partial: bool = False) -> bool:
        """Stop a download (or take it out of the line); False if it had already finished."""
        job = self._job(job_id)
        with self._lock:
            if job.progress.finished:
                return False
            job.cancel.cancel(keep_partial=keep_partial)
            queued = job.progress.state == "queued"
        if queued:  # the worker skips it; say so now
            self._finish(job, dataclasses.replace(job.progress, state="cancelled"))
        return True

    def get(self, job_id: str) -> DownloadProgress:
        return self._job(job_id).progress

    def jobs(self) -> list[DownloadProgress]:
        """Every job of this session, oldest first."""
        with self._lock:
            return [job.progress for job in self._jobs.values()]

    def wait(self, job_id: str, timeout: float | None = None) -> DownloadProgress:
        """Block until the job ends (or `timeout` seconds pass); its latest state."""
        job = self._job(job_id)
        job.finished.wait(timeout)
        return job.progress

    def clear_finished(self) -> None:
        with self._lock:
            self._jobs = {k: j for k, j in self._jobs.items() if not j.progress.finished}

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything (partial files are kept, to resume later) and stop the worker."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.progress.finished:
                self.cancel(job.job_id, keep_partial=True)
        self._pending.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _job(self, job_id: str) -> _Job:
        with self._lock:
            if job_id not in self._jobs:
                raise HubError(f"no download with id {job_id!r}")
            return self._jobs[job_id]

    def _publish(self, job: _Job, progress: DownloadProgress) -> None:
        for listener in list(self._listeners):
            try:
                listener(progress)
            except Exception:
                log.exception("download listener failed")

    def _update(self, job: _Job, progress: DownloadProgress) -> None:
        with self._lock:
            if job.progress.finished:
                return
            job.progress = progress
        self._publish(job, progress)
        if progress.finished:
            job.finished.set()

    def _finish(self, job: _Job, progress: DownloadProgress) -> None:
        self._update(job, progress)
        job.finished.set()

    def _work(self) -> None:
        while (job_id := self._pending.get()) is not None:
            job = self._jobs[job_id]
            if job.cancel.is_set():
                continue
            try:
                download_model(
                    job.repo_id,
                    job.file_name,
                    self.models_dir,
                    revision=job.revision,
                    settings=self._settings,
                    on_progress=lambda p, job=job: self._update(job, p),
                    cancel=job.cancel,
                    job_id=job.job_id,
                )
            except HubError as exc:
                state = "cancelled" if isinstance(exc, DownloadCancelled) else "failed"
                if not job.progress.finished:  # download_model normally said so already
                    self._finish(job, dataclasses.replace(job.progress, state=state))
            except Exception as exc:  # keep the worker alive whatever happens
                log.exception("download of %s failed", job.file_name)
                message = f"unexpected error: {type(exc).__name__}: {exc}"
                failed = dataclasses.replace(job.progress, state="failed", message=message)
                self._finish(job, failed)
            finally:
                job.finished.set()
