"""Shared fixtures: tiny GGUF models built once per test session, and isolation from the
user's real data (every test gets its own data folder and no network access to the Hub)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gguf_factory import write_scripted_model

# The reply every scripted model gives, one token per piece.
SCRIPT = ["Paris", " is", " the", " capital", " of", " France", "."]
REPLY = "".join(SCRIPT)
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("LOCALCHAT_DATA_DIR", str(data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LOCALCHAT_CONFIG", raising=False)
    monkeypatch.delenv("LOCALCHAT_MODELS_DIR", raising=False)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with scripted models:
    - tinyllama-scripted.gguf: no template in the file (name says TinyLlama -> zephyr)
    - chatml-scripted.gguf: carries the ChatML template in tokenizer.chat_template
    """
    folder = tmp_path_factory.mktemp("models")
    write_scripted_model(folder / "tinyllama-scripted.gguf", SCRIPT, name="TinyLlama Scripted")
    write_scripted_model(
        folder / "chatml-scripted.gguf", SCRIPT, name="Scripted", chat_template=CHATML_TEMPLATE
    )
    return folder


@pytest.fixture(scope="session")
def scripted_model(models_dir: Path) -> Path:
    """Path of the TinyLlama-named scripted model (replies REPLY)."""
    return models_dir / "tinyllama-scripted.gguf"


@pytest.fixture(scope="session")
def project_env() -> dict[str, str]:
    """Environment for running `python -m llm` / `main.py` as a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env
