"""Stored chats from the command line, end to end in subprocesses: `ask` stores its exchange,
`ask --chat` continues it, `chats`, `export`, `import`; where the data folder comes from; and
`kill -9` in the middle of a streamed reply loses nothing that was finished."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import PROJECT_DIR
from support.commands import run_llm
from support.gguf_factory import write_scripted_model
from support.replies import REPLY

from llm.chat_export import chat_to_markdown
from llm.cli import main
from llm.storage import DB_FILE_NAME, ChatStore

ROOT = PROJECT_DIR
SLOW_SCRIPT = [f" s{i}" for i in range(600)]
SLOW_REPLY = "".join(SLOW_SCRIPT).lstrip()


def saved_chat_id(stderr: str) -> int:
    match = re.search(r"^saved in chat (\d+)", stderr, re.MULTILINE)
    assert match, stderr
    return int(match.group(1))


def prompt_tokens(stderr: str) -> int:
    return int(re.search(r"^prompt (\d+) tokens", stderr.splitlines()[-1]).group(1))


def test_ask_chats_export_import(
    models_dir: Path, project_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    base = ["--models-dir", str(models_dir), "--data-dir", str(data)]
    first = run_llm(
        *base, "ask", "--model", "tinyllama-scripted.gguf", "Capital of France?", env=project_env
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == REPLY + "\n"
    chat_id = saved_chat_id(first.stderr)
    assert first.stderr.splitlines()[-1].startswith("prompt ")  # figures stay the last line

    again = run_llm(
        *base, "ask", "--chat", str(chat_id), "--max-tokens", "32", "And Italy?", env=project_env
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == REPLY + "\n" and saved_chat_id(again.stderr) == chat_id
    # the first exchange was in the prompt
    assert prompt_tokens(again.stderr) > prompt_tokens(first.stderr) + len(REPLY.split())

    listing = run_llm(*base, "chats", env=project_env)
    assert listing.returncode == 0
    assert re.search(
        rf"^{chat_id}  \S+ \S+ +4 msgs  Capital of France\?  \[tinyllama", listing.stdout
    )
    listed = json.loads(run_llm(*base, "chats", "--json", env=project_env).stdout)
    assert listed["database"] == str(data / DB_FILE_NAME)
    assert [(c["id"], c["message_count"]) for c in listed["chats"]] == [(chat_id, 4)]

    markdown = run_llm(*base, "export", str(chat_id), env=project_env)
    assert markdown.returncode == 0 and markdown.stdout.startswith("# Capital of France?\n")
    assert markdown.stdout.count("## Assistant") == 2 and "And Italy?" in markdown.stdout
    exported = tmp_path / "chat.json"
    written = run_llm(
        *base, "export", str(chat_id), "--format", "json", "-o", str(exported), env=project_env
    )
    assert written.returncode == 0 and written.stdout == ""
    document = json.loads(exported.read_text(encoding="utf-8"))
    assert [m["content"] for m in document["chat"]["messages"]] == [
        "Capital of France?",
        REPLY,
        "And Italy?",
        REPLY,
    ]
    imported = run_llm(*base, "import", str(exported), env=project_env)
    assert imported.returncode == 0, imported.stderr
    new_id = int(re.fullmatch(r"imported as chat (\d+)\n", imported.stdout).group(1))
    assert new_id != chat_id
    exported_again = run_llm(*base, "export", str(new_id), "--format", "json", env=project_env)
    copy = json.loads(exported_again.stdout)
    assert copy["chat"]["messages"] == document["chat"]["messages"]


def test_user_errors_are_one_line_and_change_nothing(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process `main`: the same code as `python -m llm`, without an interpreter start each.
    data = tmp_path / "data"
    with ChatStore.in_folder(data) as store:
        chat_id = store.create_chat(model="tinyllama-scripted.gguf")
        store.add_message(chat_id, "user", "Hello")
    (tmp_path / "bad.json").write_text('{"format": "localchat-chat", "version": 1, "chat": []}')
    (tmp_path / "latin1.json").write_bytes(b'{"title": "caf\xe9"}')
    for args, message in [
        (["export", "99"], "error: no chat with id 99"),
        (["export", "one"], "chat id 'one' must be a whole number"),
        (
            ["export", "1", "--format", "json", "-o", str(tmp_path / "no" / "x.json")],
            "cannot write",
        ),
        (["import", str(tmp_path / "bad.json")], '"chat" must be an object'),
        (["import", str(tmp_path / "latin1.json")], "not UTF-8 text"),
        (["import", str(tmp_path / "missing.json")], "cannot read"),
        (["ask", "--chat", "99", "hi"], "no chat with id 99"),
        (["ask", "--chat", str(chat_id), "--system", "x", "hi"], "cannot change a stored chat"),
        (["ask", "hi"], "which model? "),  # two models in the folder, no default
        (["ask", "--model", "nope.gguf", "hi"], "model not found"),
    ]:
        code = main(["--models-dir", str(models_dir), "--data-dir", str(data), *args])
        captured = capsys.readouterr()
        assert code == 2, (args, captured.err)
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        assert captured.err.startswith("error: ") and message in captured.err, captured.err
    with ChatStore.in_folder(data) as store:  # the refused commands stored nothing
        assert [c.message_count for c in store.list_chats()] == [1]


def test_data_folder_flag_beats_environment_beats_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "conf" / "config.toml"
    config.parent.mkdir()
    config.write_text('[app]\ndata_dir = "from-config"\n')

    def database(*flags: str) -> str:
        assert main(["--config", str(config), *flags, "chats", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["database"]

    monkeypatch.delenv("LOCALCHAT_DATA_DIR")
    assert database() == str(tmp_path / "conf" / "from-config" / DB_FILE_NAME)  # relative to it
    monkeypatch.setenv("LOCALCHAT_DATA_DIR", str(tmp_path / "from-env"))
    assert database() == str(tmp_path / "from-env" / DB_FILE_NAME)
    assert database("--data-dir", str(tmp_path / "from-flag")) == str(
        tmp_path / "from-flag" / DB_FILE_NAME
    )
    assert main(["--config", str(config), "chats"]) == 0
    assert capsys.readouterr().out.startswith("No chats yet in ")


@pytest.fixture(scope="module")
def crash_models(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast scripted model, and one with real per-token cost that talks for many seconds."""
    folder = tmp_path_factory.mktemp("crash-models")
    shutil.copyfile(models_dir / "tinyllama-scripted.gguf", folder / "tinyllama-scripted.gguf")
    write_scripted_model(
        folder / "slow-scripted.gguf",
        SLOW_SCRIPT,
        name="TinyLlama Slow",
        n_embd=1024,
        n_layer=6,
        n_ff=4096,
        dtype="f16",
    )
    return folder


def test_kill_9_during_a_streamed_reply(
    crash_models: Path, project_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[inference]\nn_threads = 1\n")  # steady, slow tokens on any machine
    data = tmp_path / "data"
    base = ["--config", str(config), "--models-dir", str(crash_models), "--data-dir", str(data)]
    first = run_llm(*base, "ask", "--model", "tinyllama-scripted.gguf", "Capital?", env=project_env)
    assert first.returncode == 0, first.stderr
    chat_id = saved_chat_id(first.stderr)

    command = ["ask", "--chat", str(chat_id), "--model", "slow-scripted.gguf"]
    process = subprocess.Popen(
        [sys.executable, "-m", "llm", *base, *command, "--max-tokens", "1000", "Keep talking"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=project_env,
        cwd=ROOT,
        start_new_session=True,  # its own process group, with the model worker
    )
    store = ChatStore.in_folder(data)  # opened while it streams: its reply is left alone
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            messages = store.get_chat(chat_id).messages
            if len(messages) == 4 and messages[3].content:
                break
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no partial reply was saved within 120 s")
        assert messages[3].status == "streaming"
        workers = psutil.Process(process.pid).children(recursive=True)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        printed = process.stdout.read().decode()
        # the model worker notices its parent is gone and exits by itself
        _, alive = psutil.wait_procs(workers, timeout=30)
        assert alive == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for worker in workers:
            if worker.is_running():
                worker.kill()
        process.stdout.close()
        process.stderr.close()
        store.close()

    with ChatStore.in_folder(data) as reopened:  # "restart"
        chat = reopened.get_chat(chat_id)
        user1, reply1, user2, cut = chat.messages
        assert (user1.content, user1.status) == ("Capital?", "complete")
        assert (reply1.content, reply1.status) == (REPLY, "complete")
        assert reply1.completion_tokens > 0
        assert (user2.content, user2.status) == ("Keep talking", "complete")
        assert cut.status == "interrupted" and cut.model == "slow-scripted.gguf"
        assert cut.content and SLOW_REPLY.startswith(cut.content)
        assert len(cut.content) < len(SLOW_REPLY)
        assert printed.startswith(cut.content)  # what was saved had been shown
        assert chat.model == "slow-scripted.gguf"
        assert "*Interrupted: LocalChat stopped while" in chat_to_markdown(
            reopened.get_chat(chat_id)
        )
    db = sqlite3.connect(data / DB_FILE_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()
