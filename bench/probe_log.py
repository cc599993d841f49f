"""Reading what `bench/probe/sitecustomize.py` wrote: one reply's pipe events at a time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def read_probe(
    probe_dir: Path, pid: int | None, offsets: dict[int, int], wait_s: float = 10.0
) -> list[dict[str, Any]]:
    """Events process `pid` wrote since the last call, waiting up to `wait_s` for a "done"
    event (the probe writes a reply's events when the reply ends)."""
    if pid is None:
        return []
    path = probe_dir / f"probe-{pid}.jsonl"
    deadline = time.time() + wait_s
    events: list[dict[str, Any]] = []
    while True:
        if path.exists():
            with open(path, encoding="utf-8") as f:
                f.seek(offsets.get(pid, 0))
                while (line := f.readline()).endswith("\n"):
                    offsets[pid] = f.tell()
                    events.append(json.loads(line))
        if any(e["type"] == "done" for e in events) or time.time() > deadline:
            return events
        time.sleep(0.2)  # rarely: this process shares the cores with what it measures


def text_times(events: list[dict[str, Any]], direction: str) -> list[tuple[float, str]]:
    """(time, text) of the text events that went in `direction` ("send" or "recv")."""
    return [(e["t"], e["text"]) for e in events if e["type"] == "text" and e["dir"] == direction]


def done_event(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(events) if e["type"] == "done"), None)
