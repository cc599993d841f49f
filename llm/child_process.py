"""Starting one of LocalChat's helper processes: a fresh interpreter running `MODULE.main()`,
talking over a socket pair with `multiprocessing.connection` messages.

A fresh interpreter (not multiprocessing's spawn), so the caller's __main__ (a notebook,
main.py) is never re-imported in the child. The child gets the socket's file descriptor as its
only argument and exits when the other end closes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def start_child(module: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start `module.main()` in a fresh interpreter, the connection's descriptor as its one
    argument; returns the process and this side's connection. Not `python -m module`: a
    module the package imports would then run twice (as itself and as __main__), which
    Python warns about on every start."""
    ours, theirs = socket.socketpair()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-c", f"from {module} import main; main()", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    theirs.close()
    return process, Connection(ours.detach())


def child_connection() -> Connection:
    """In the child: the connection to the parent (the descriptor given as argument)."""
    return Connection(int(sys.argv[1]))
