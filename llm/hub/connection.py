"""How LocalChat's Hub requests connect: an unreachable Hub is said within seconds.

huggingface_hub retries a request that cannot connect five times, waiting 1, 2, 4, 8 and 8
seconds and logging "Retrying in 8s" each time (`utils/_http.py`, `_http_backoff_base`: the
retried exceptions are hard-coded), and its client has no connect timeout. Offline, a search
took about 16 s and printed five warnings before its error. The library's knob is
`set_client_factory`: LocalChat's client bounds the name lookup and the connection by
`CONNECT_TIMEOUT_S` and turns a failed connection into `HubUnreachable`, a transport error
that huggingface_hub does not retry. Transfers that break off midway are still retried (and
a download resumes where it stopped).
"""

from __future__ import annotations

import concurrent.futures
import socket
import threading
from typing import Any

import httpx2
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import hf_request_event_hook

CONNECT_TIMEOUT_S = 2.5  # name lookup, then the connection: each at most this long
_lookups = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="hub-dns")
_installed = False
_lock = threading.Lock()


class HubUnreachable(httpx2.TransportError):
    """No connection could be made (unknown name, refused, no answer in time): not retried."""


class _FailFastTransport(httpx2.HTTPTransport):
    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        host = request.url.host
        # getaddrinfo has no timeout of its own (a resolver that gets no answer waits ~10 s).
        lookup = _lookups.submit(socket.getaddrinfo, host, request.url.port or 443)
        try:
            lookup.result(timeout=CONNECT_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise HubUnreachable(f"no answer for {host} in time", request=request) from None
        except OSError as exc:  # e.g. "[Errno -2] Name or service not known"
            raise HubUnreachable(str(exc), request=request) from None
        timeouts: dict[str, Any] = dict(request.extensions.get("timeout") or {})
        connect = timeouts.get("connect")
        if connect is None or connect > CONNECT_TIMEOUT_S:
            timeouts["connect"] = CONNECT_TIMEOUT_S
        request.extensions["timeout"] = timeouts
        try:
            return super().handle_request(request)
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise HubUnreachable(str(exc) or type(exc).__name__, request=request) from exc


def _client() -> httpx2.Client:
    # As huggingface_hub's default_client_factory, with the fail-fast transport.
    return httpx2.Client(
        transport=_FailFastTransport(),
        event_hooks={"request": [hf_request_event_hook]},
        follow_redirects=True,
        timeout=None,
    )


def use_fail_fast_client() -> None:
    """Make huggingface_hub use LocalChat's client (once per process)."""
    global _installed
    with _lock:
        if not _installed:
            set_client_factory(_client)
            _installed = True
