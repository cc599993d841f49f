"""Waiting for a process to go quiet, so that one path's leftover work (the app evaluates the
next turn's template after a reply) is not timed as part of the next path's turn."""

from __future__ import annotations

import time

import psutil

QUIET_S = 0.1  # a window with less than 5 % of a core used counts as idle
LIMIT_S = 5.0


def wait_idle(pid: int | None) -> float:
    """Block until process `pid` uses under 5 % of a core for QUIET_S (at most LIMIT_S);
    returns the seconds waited."""
    if pid is None:
        return 0.0
    from llm.worker import NEXT_REQUEST_S  # here: the raw path's process never imports llm

    started = time.monotonic()
    # The worker waits NEXT_REQUEST_S for a request before it starts: idle, but not done.
    time.sleep(NEXT_REQUEST_S + 0.05)
    try:
        process = psutil.Process(pid)
        before = sum(process.cpu_times()[:2])
        while time.monotonic() - started < LIMIT_S:
            time.sleep(QUIET_S)
            now = sum(process.cpu_times()[:2])
            if now - before < 0.05 * QUIET_S:
                break
            before = now
    except psutil.Error:  # gone: nothing left to wait for
        pass
    return time.monotonic() - started
