"""The Hub's API: where the Hub is (`HubSettings`), GGUF repositories found by name
(`search_models`) and a repository's GGUF models with sizes, checksums and quantization
(`list_gguf_files`; split files `-00001-of-00003.gguf` form one model).

`hub_call` turns whatever huggingface_hub raises into one plain `HubError` sentence; downloads
use it too. Environment (read on every call, not only at import): HF_ENDPOINT, HF_TOKEN,
HF_HUB_OFFLINE.
"""

from __future__ import annotations

import contextlib
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from huggingface_hub import HfApi, constants
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

from ..errors import (
    HubAccessError,
    HubError,
    HubNetworkError,
    HubNotFoundError,
    HubOfflineError,
    HubUnreachableError,
)
from .connection import HubUnreachable, use_fail_fast_client
from .names import check_repo_id, parse_quantization, split_part

DEFAULT_ENDPOINT = "https://huggingface.co"
UNREACHABLE = "Hugging Face can't be reached — local models still work"
MAX_QUERY_CHARS = 200


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
def hub_call(
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
    use_fail_fast_client()  # no connection: said in seconds, without five retries
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
    if isinstance(exc, HubUnreachable):
        return HubUnreachableError(
            f"{UNREACHABLE} (cannot reach {where}: {exc}; check the network connection or "
            "HF_ENDPOINT)",
            endpoint=where,
            reason=str(exc),
        )
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
    with hub_call(settings):
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
    with hub_call(settings, repo_id, revision=revision):
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
