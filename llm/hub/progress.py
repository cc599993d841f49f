"""Where a download stands: `DownloadProgress` events, and the `Transfer` that counts one
download's bytes, measures its speed, honours cancel and emits those events (also through
the tqdm bar huggingface_hub drives)."""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from ..errors import DownloadCancelled

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.1  # seconds between progress events (state changes are always sent)
STATES = ("queued", "downloading", "verifying", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")


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
    error_code: str = ""  # the failure's LocalChatError code, for the pages' words

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "percent": round(self.percent, 1)}


ProgressCallback = Callable[[DownloadProgress], None]


class Transfer:
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

    def snapshot(self, message: str = "", path: str = "", error_code: str = "") -> DownloadProgress:
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
            error_code=error_code,
        )

    def emit(
        self,
        state: str,
        *,
        force: bool = False,
        message: str = "",
        path: str = "",
        error_code: str = "",
    ) -> None:
        now = time.monotonic()
        if state == self.state and not force and now - self._last_emit < PROGRESS_INTERVAL:
            return
        self.state, self._last_emit = state, now
        if self.on_progress is None:
            return
        try:
            self.on_progress(self.snapshot(message, path, error_code))
        except Exception:  # a broken listener must not break the download
            log.exception("download progress callback failed")


def progress_bar_class(transfer: Transfer, show_bar: bool) -> type[tqdm]:
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
