"""Two processes writing to one database at the same moment lose nothing and never surface
"database is locked" — with SQLite's busy wait, and with it off (then our retries do it)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm.storage import DB_FILE_NAME, ChatStore

ROUNDS = 60

# Each writer: wait for the start signal, then per round add a user message to the shared
# chat, and stream a reply (start, two partial saves, finish) in its own chat.
_WRITER = """
import sys, time
from pathlib import Path
from llm.storage import ChatStore
path, name, shared, own, go, busy = sys.argv[1:7]
store = ChatStore(path, busy_timeout_s=float(busy))
deadline = time.monotonic() + 60
while not Path(go).exists() and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range(int(sys.argv[7])):
    store.add_message(int(shared), "user", f"{name}-{i}")
    reply = store.start_reply(int(own), model="m.gguf")
    store.update_reply(reply, "par")
    store.update_reply(reply, "partial")
    store.finish_reply(reply, status="complete", text=f"{name} reply {i}")
    store.list_chats()
store.close()
"""


@pytest.mark.parametrize("busy_timeout_s", [5.0, 0.0], ids=["busy-wait", "retries-only"])
def test_two_writer_processes_lose_no_message(
    tmp_path: Path, project_env: dict[str, str], busy_timeout_s: float
) -> None:
    path = tmp_path / DB_FILE_NAME
    go = tmp_path / "go"
    with ChatStore(path) as store:
        shared = store.create_chat(title="shared")
        own = {name: store.create_chat(title=name) for name in ("a", "b")}
    writers = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(path),
                name,
                str(shared),
                str(own[name]),
                str(go),
                str(busy_timeout_s),
                str(ROUNDS),
            ],
            env=project_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    }
    time.sleep(0.5)  # both have opened the database and are waiting
    go.touch()
    results = {}
    for name, process in writers.items():
        try:
            _, err = process.communicate(timeout=120)
        finally:
            process.kill()
        results[name] = (process.returncode, err)
    for name, (code, err) in results.items():
        assert code == 0, f"writer {name} failed: {err}"
        assert "locked" not in err

    with ChatStore(path) as store:
        messages = store.get_chat(shared).messages
        assert [m.position for m in messages] == list(range(2 * ROUNDS))
        contents = [m.content for m in messages]
        for name in ("a", "b"):
            mine = [c for c in contents if c.startswith(f"{name}-")]
            assert mine == [f"{name}-{i}" for i in range(ROUNDS)]  # all there, in order
            replies = store.get_chat(own[name]).messages
            assert [(r.content, r.status) for r in replies] == [
                (f"{name} reply {i}", "complete") for i in range(ROUNDS)
            ]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
