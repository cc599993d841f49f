"""The Hugging Face Hub: find GGUF models and download them. All huggingface_hub use lives in
this package; `from llm.hub import ...` gives its public API.

- `names`: repository ids and file names checked before any request; quantization and split
  parts read from a file name.
- `api`: `HubSettings` (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE), `search_models`,
  `list_gguf_files`, and the Hub's errors worded as one `HubError` sentence.
- `download`: `download_model` (resumable, SHA-256 verified), `partial_downloads`.
- `progress`: `DownloadProgress` events.
- `download_queue`: `DownloadQueue`, downloads one at a time for the web page.
- `cli`: `python -m llm search / files / download / catalog`.

Whether a file fits this machine is `llm.fit`; the errors are in `llm.errors`.
"""

from ..errors import (
    ChecksumError,
    DiskFullError,
    DownloadCancelled,
    HubAccessError,
    HubError,
    HubNetworkError,
    HubNotFoundError,
    HubOfflineError,
    UnsafeFileNameError,
)
from .api import (
    DEFAULT_ENDPOINT,
    MAX_QUERY_CHARS,
    GgufModel,
    HubSettings,
    RemoteFile,
    RepoListing,
    RepoSummary,
    group_gguf_files,
    list_gguf_files,
    search_models,
)
from .download import (
    CHUNK_SIZE,
    NOTE_SUFFIX,
    PARTIAL_SUFFIX,
    PartialDownload,
    discard_partial,
    download_model,
    partial_downloads,
)
from .download_queue import CancelEvent, DownloadQueue
from .names import check_repo_id, parse_quantization, safe_local_name, split_part
from .progress import FINISHED, STATES, DownloadProgress, ProgressCallback

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ENDPOINT",
    "FINISHED",
    "MAX_QUERY_CHARS",
    "NOTE_SUFFIX",
    "PARTIAL_SUFFIX",
    "STATES",
    "CancelEvent",
    "ChecksumError",
    "DiskFullError",
    "DownloadCancelled",
    "DownloadProgress",
    "DownloadQueue",
    "GgufModel",
    "HubAccessError",
    "HubError",
    "HubNetworkError",
    "HubNotFoundError",
    "HubOfflineError",
    "HubSettings",
    "PartialDownload",
    "ProgressCallback",
    "RemoteFile",
    "RepoListing",
    "RepoSummary",
    "UnsafeFileNameError",
    "check_repo_id",
    "discard_partial",
    "download_model",
    "group_gguf_files",
    "list_gguf_files",
    "parse_quantization",
    "partial_downloads",
    "safe_local_name",
    "search_models",
    "split_part",
]
