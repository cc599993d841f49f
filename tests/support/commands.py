"""The command line and the test cache: `python -m llm` in a subprocess, and the folder where
the tests keep what they fetch once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import PROJECT_DIR


def project_env() -> dict[str, str]:
    """This process's environment (the test's own data folder included) with the project
    importable, for `python -m llm` / `main.py` subprocesses."""
    return {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}


def run_llm(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m llm ARGS` in the project folder, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "llm", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_DIR,
        timeout=timeout,
    )


def cache_folder() -> Path:
    """Where the tests keep what they fetch once, outside the repository (as Chromium lives on
    the machine, not in it): LOCALCHAT_TEST_CACHE, else ~/.cache/localchat-tests."""
    chosen = os.environ.get("LOCALCHAT_TEST_CACHE")
    if chosen:
        return Path(chosen)
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "localchat-tests"
