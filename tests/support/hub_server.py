"""A local HTTP server that speaks the parts of the Hugging Face Hub API huggingface_hub uses.

Tests start it on 127.0.0.1 (a free port) and point `HF_ENDPOINT` at it. It serves:

- `GET /api/models?search=&filter=&sort=&limit=`  search (the `gguf` filter matches tags)
- `GET /api/models/{repo}[/revision/{rev}][?blobs=true]`  model info; with `blobs` the siblings
  carry `size`, `blobId` and `lfs.sha256`
- `GET /api/models/{repo}/tree/{rev}[/{path}]`  the file listing with `lfs.oid`
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}`  the file, with `X-Repo-Commit`, `ETag`,
  `X-Linked-Etag`, `X-Linked-Size`, `Content-Length` and `Range` support (206)

Errors come the Hub's way: status plus `X-Error-Code` (`RepoNotFound`, `EntryNotFound`,
`RevisionNotFound`, `GatedRepo`), which huggingface_hub turns into its own exceptions.

Switches (plain attributes, change them between requests):
- `drop_after` / `drops_left`: close the connection after sending that many body bytes
  (`drops_left` responses, then serve normally; None: every response)
- `throttle_bps`: send file bodies at about this many bytes per second
- `hold_at` / `release`: stop sending a file body at that byte offset until `release` is set
  (progress tests see a part-done download however slow the machine)
- `corrupt`: file paths whose served bytes have one byte flipped (the metadata stays right)
- `claimed_sizes`: file path -> size to announce instead of the real one (disk-full checks)
- `force_status`: URL path prefix -> HTTP status to answer with
- `tokens`: bearer tokens allowed into gated and private repositories

`requests` logs every request (method, path, Range header, status, body bytes sent).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class HubRepo:
    """One model repository: its files by path, and who may read them."""

    repo_id: str
    files: dict[str, bytes]
    commit: str
    tags: list[str]
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    private: bool = False


@dataclass
class RequestRecord:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int = 0


@dataclass
class _Switches:
    drop_after: int | None = None
    drops_left: int | None = None
    throttle_bps: float | None = None
    hold_at: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    corrupt: set[str] = field(default_factory=set)
    claimed_sizes: dict[str, int] = field(default_factory=dict)
    force_status: dict[str, int] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)


def git_blob_id(data: bytes) -> str:
    """The git object id of a file's content (what the Hub calls `blobId`/`oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that go away (cancelled, killed, dropped) are part of the tests, not errors.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HubServer:
    """The server and its data; use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.switches = _Switches()
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None

    # --- data ---------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        tags: list[str] | None = None,
        downloads: int = 0,
        likes: int = 0,
        gated: bool = False,
        private: bool = False,
    ) -> HubRepo:
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        repo = HubRepo(
            repo_id,
            dict(files),
            commit,
            tags if tags is not None else ["gguf"],
            downloads,
            likes,
            gated,
            private,
        )
        self.repos[repo_id] = repo
        return repo

    def reset(self) -> None:
        """Back to normal service: no drops, throttling, corruption or forced errors."""
        self.switches = _Switches()
        with self._lock:
            self.requests.clear()

    def bytes_served(self, path_part: str) -> int:
        """File body bytes sent for GET requests whose path contains `path_part`."""
        with self._lock:
            return sum(
                r.body_bytes for r in self.requests if r.method == "GET" and path_part in r.path
            )

    def file_gets(self, path_part: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and path_part in r.path]

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _take_drop(self) -> int | None:
        """How many body bytes this response may send before the connection drops."""
        with self._lock:
            s = self.switches
            if s.drop_after is None or s.drops_left == 0:
                return None
            if s.drops_left is not None:
                s.drops_left -= 1
            return s.drop_after


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # --- plumbing -----------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _record(self, status: int) -> RequestRecord:
        """Log the request. Called before the headers end, so the log is complete by the time
        the client has its answer; a file body's byte count is added as it is sent."""
        record = RequestRecord(self.command, self.path, self.headers.get("Range"), status)
        self.hub._log(record)
        return record

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self._record(status)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth.removeprefix("Bearer ").strip() or None

    def _dispatch(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        for prefix, status in self.hub.switches.force_status.items():
            if path.startswith(prefix):
                self._error(status, None, f"forced status {status}")
                return
        if path == "/api/models":
            self._search(query)
        elif path.startswith("/api/models/"):
            self._api_model(path.removeprefix("/api/models/"), query)
        elif "/resolve/" in path:
            repo_id, _, rest = path.lstrip("/").partition("/resolve/")
            rev, _, file_path = rest.partition("/")
            self._resolve(repo_id, rev, file_path)
        else:
            self._error(404, None, "Not Found")

    # --- access -------------------------------------------------------------------------
    def _repo_or_error(self, repo_id: str, *, for_file: bool) -> HubRepo | None:
        """The repository if this request may see it; otherwise answer the Hub's error."""
        repo = self.hub.repos.get(repo_id)
        token = self._token()
        allowed = token is not None and token in self.hub.switches.tokens
        if repo is None or (repo.private and not allowed):
            # The Hub answers 401 to anonymous requests for missing and private repositories.
            status = 404 if token else 401
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and for_file and not allowed:
            status = 403 if token else 401
            message = f"Access to model {repo_id} is restricted. You must have access to it."
            self._error(status, "GatedRepo", message)
            return None
        return repo

    def _check_revision(self, repo: HubRepo, rev: str) -> bool:
        if rev in ("main", repo.commit):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return False

    # --- routes -------------------------------------------------------------------------
    def _search(self, query: dict[str, list[str]]) -> None:
        search = (query.get("search") or [""])[0].lower()
        filters = query.get("filter") or []
        limit = int((query.get("limit") or ["1000"])[0])
        found = [
            r
            for r in self.hub.repos.values()
            if not r.private and search in r.repo_id.lower() and all(f in r.tags for f in filters)
        ]
        found.sort(key=lambda r: -r.downloads)
        rows = [
            {
                "_id": r.commit[:24],
                "id": r.repo_id,
                "modelId": r.repo_id,
                "author": r.repo_id.split("/")[0],
                "downloads": r.downloads,
                "likes": r.likes,
                "tags": r.tags,
                "gated": "manual" if r.gated else False,
                "private": False,
                "lastModified": "2024-01-02T03:04:05.000Z",
                "library_name": "gguf" if "gguf" in r.tags else None,
            }
            for r in found[:limit]
        ]
        self._json(200, rows)

    def _api_model(self, rest: str, query: dict[str, list[str]]) -> None:
        parts = rest.split("/")
        repo_id = "/".join(parts[:2])
        repo = self._repo_or_error(repo_id, for_file=False)
        if repo is None:
            return
        tail = parts[2:]
        if tail[:1] == ["tree"] and len(tail) >= 2:
            if self._check_revision(repo, tail[1]):
                self._tree(repo, "/".join(tail[2:]))
            return
        if tail[:1] == ["revision"] and len(tail) == 2:
            if not self._check_revision(repo, tail[1]):
                return
        elif tail:
            self._error(404, None, "Not Found")
            return
        blobs = (query.get("blobs") or ["false"])[0].lower() == "true"
        siblings = []
        for file_path, data in sorted(repo.files.items()):
            sibling: dict[str, object] = {"rfilename": file_path}
            if blobs:
                size = self.hub.switches.claimed_sizes.get(file_path, len(data))
                sibling.update(
                    size=size,
                    blobId=git_blob_id(data),
                    lfs={
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": size,
                        "pointerSize": 134,
                    },
                )
            siblings.append(sibling)
        self._json(
            200,
            {
                "_id": repo.commit[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": repo.commit,
                "lastModified": "2024-01-02T03:04:05.000Z",
                "private": repo.private,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "downloads": repo.downloads,
                "likes": repo.likes,
                "tags": repo.tags,
                "library_name": "gguf" if "gguf" in repo.tags else None,
                "siblings": siblings,
            },
        )

    def _tree(self, repo: HubRepo, under: str) -> None:
        prefix = f"{under.strip('/')}/" if under.strip("/") else ""
        entries = []
        for file_path, data in sorted(repo.files.items()):
            if not file_path.startswith(prefix):
                continue
            size = self.hub.switches.claimed_sizes.get(file_path, len(data))
            entries.append(
                {
                    "type": "file",
                    "oid": git_blob_id(data),
                    "size": size,
                    "path": file_path,
                    "lfs": {
                        "oid": hashlib.sha256(data).hexdigest(),
                        "size": size,
                        "pointerSize": 134,
                    },
                }
            )
        self._json(200, entries)

    def _resolve(self, repo_id: str, rev: str, file_path: str) -> None:
        repo = self._repo_or_error(repo_id, for_file=True)
        if repo is None or not self._check_revision(repo, rev):
            return
        if file_path not in repo.files:
            self._error(404, "EntryNotFound", f"{file_path} does not exist on {rev}")
            return
        data = repo.files[file_path]
        if file_path in self.hub.switches.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        sha = hashlib.sha256(repo.files[file_path]).hexdigest()
        headers = {
            "X-Repo-Commit": repo.commit,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start = 0
        range_header = self.headers.get("Range")
        status = 200
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header.removeprefix("bytes=").partition("-")
            start = int(first or 0)
            end = int(last) if last else len(data) - 1
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(416, b"", headers)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        record = self._record(status)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = self.hub._take_drop()
        try:
            for piece in self._pieces(data, limit):
                record.body_bytes += len(piece)
                self.wfile.write(piece)
            if limit is not None and record.body_bytes < len(data):
                # Simulate a network drop: end the connection with the body incomplete.
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (cancelled or killed)

    def _pieces(self, data: bytes, limit: int | None) -> Iterator[bytes]:
        """The body in 16 KiB pieces, paced by `throttle_bps`, stopping at `limit` bytes."""
        end = len(data) if limit is None else min(limit, len(data))
        step = 16 * 1024
        started = time.monotonic()
        held = False
        for offset in range(0, end, step):
            hold_at = self.hub.switches.hold_at
            if hold_at is not None and offset >= hold_at and not held:
                held = True
                self.hub.switches.release.wait(timeout=60)  # bounded: a test that forgot
            bps = self.hub.switches.throttle_bps
            if bps:
                wait = started + offset / bps - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            yield data[offset : min(offset + step, end)]


# --- the repositories the hub tests use --------------------------------------------------------
REPO = "test-org/Scripted-GGUF"
SMALL = "scripted.Q4_K_M.gguf"  # the TinyLlama-named scripted model (about 375 KB)
SMALL_Q8 = "scripted.Q8_0.gguf"  # another scripted model, other bytes
SPLIT = ("split/scripted-Q2_K-00001-of-00002.gguf", "split/scripted-Q2_K-00002-of-00002.gguf")
MEDIUM_REPO = "test-org/Medium-GGUF"
MEDIUM = "medium.Q4_K_M.gguf"  # a bigger scripted model (about 2.7 MB) for throttled tests
GATED_REPO = "test-org/Gated-GGUF"
PRIVATE_REPO = "test-org/Private-GGUF"
OTHER_REPO = "other-org/Safetensors-Model"  # not tagged gguf: never in search results


def populate(hub: HubServer, folder: object, script: list[str]) -> None:
    """Write the test models with gguf_factory and publish them in `hub`'s repositories."""
    from pathlib import Path

    from .gguf_factory import write_scripted_model

    folder = Path(str(folder))
    small, small_q8, medium = (
        folder / "small.gguf",
        folder / "small-q8.gguf",
        folder / "medium.gguf",
    )
    write_scripted_model(small, script, name="TinyLlama Scripted")
    write_scripted_model(small_q8, script, name="Scripted Q8", n_embd=128)
    write_scripted_model(
        medium, script, name="TinyLlama Scripted Medium", n_embd=256, n_layer=1, n_ff=256
    )
    hub.add_repo(
        REPO,
        {
            SMALL: small.read_bytes(),
            SMALL_Q8: small_q8.read_bytes(),
            SPLIT[0]: b"GGUF" + bytes(range(256)) * 40,
            SPLIT[1]: bytes(range(255, -1, -1)) * 30,
            "README.md": b"# Scripted\n",
            "config.json": b"{}",
        },
        tags=["gguf", "llama", "text-generation"],
        downloads=500,
        likes=7,
    )
    hub.add_repo(MEDIUM_REPO, {MEDIUM: medium.read_bytes()}, downloads=100)
    hub.add_repo(GATED_REPO, {"gated.Q4_K_M.gguf": small.read_bytes()}, gated=True, downloads=50)
    hub.add_repo(PRIVATE_REPO, {"private.Q4_K_M.gguf": small.read_bytes()}, private=True)
    hub.add_repo(OTHER_REPO, {"model.safetensors": b"\0" * 64}, tags=["safetensors"], downloads=900)
