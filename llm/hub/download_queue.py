"""The download queue: several downloads for the web page, run one at a time in one background
thread, each cancellable (keeping its partial file to resume later, or not), with every
progress event passed to listeners."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import DownloadCancelled, HubError
from .api import HubSettings
from .download import download_model
from .names import check_repo_id, safe_local_name
from .progress import DownloadProgress, ProgressCallback

log = logging.getLogger(__name__)


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

    def retry(self, job_id: str) -> str:
        """Queue a failed or cancelled download again (it resumes from its partial file, if
        one was kept); returns the new job's id. The old one leaves the list."""
        job = self._job(job_id)
        with self._lock:
            if not job.progress.finished or job.progress.state == "done":
                raise HubError(f"the download of {job.file_name} has not failed")
            # Off the list before the new one is announced: no view shows both.
            self._jobs.pop(job_id, None)
        try:
            return self.add(job.repo_id, job.file_name, revision=job.revision)
        except HubError:
            with self._lock:
                self._jobs.setdefault(job_id, job)
            raise

    def dismiss(self, job_id: str) -> bool:
        """Take a finished download off the list; False if it is still running (or gone)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.progress.finished:
                return False
            del self._jobs[job_id]
            return True

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
