"""`python -m llm chats`: the list (pinned first), `chats show ID [--tree]` and
`chats search WORDS [--json]`, in-process on a real database; the top-level `search` stays
the Hub search and says where chat search is; and one run in a subprocess, as a user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm.cli import main
from llm.storage import ChatStore


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with a chat of three branches, a Korean chat and a pinned one."""
    folder = tmp_path / "data"
    with ChatStore.in_folder(folder) as store:
        chat = store.create_chat()
        q1, a1 = store.begin_exchange(chat, "What is the capital of France?")
        store.finish_reply(a1, status="complete", text="Paris.")
        _q2, a2 = store.begin_exchange(chat, "And of Korea?")
        store.finish_reply(a2, status="complete", text="Seoul, on the", finish_reason="length")
        _q3, a3 = store.begin_exchange(chat, "And of Japan?", parent_id=a1)
        store.finish_reply(a3, status="stopped", text="Tokyo")
        a4 = store.start_reply(chat, parent_id=q1)
        store.finish_reply(a4, status="complete", text="It is Paris.\nA big city.")
        store.switch_to(chat, a3)
        korean = store.create_chat()
        _, reply = store.begin_exchange(korean, "서울은 어떤 도시인가요?")
        store.finish_reply(reply, status="complete", text="한강이 흐르는 도시입니다.")
        pinned = store.create_chat(title="Pinned notes")
        store.set_pinned(pinned, True)
        store.create_chat(title="Newest")
    return folder


def run(data: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_chats_alone_still_lists_chats_pinned_first(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(data, capsys, "chats")
    titles = [line.split("msgs  ")[1] for line in out.splitlines()]
    assert code == 0
    assert titles == [
        "(pinned) Pinned notes",
        "Newest",
        "서울은 어떤 도시인가요?",
        "What is the capital of France?",
    ]
    code, out, _ = run(data, capsys, "chats", "--json")
    rows = json.loads(out)["chats"]
    assert [(r["title"], r["pinned"]) for r in rows][:2] == [
        ("Pinned notes", True),
        ("Newest", False),
    ]


def test_chats_show_tree_draws_the_branches_and_marks_the_shown_one(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(data, capsys, "chats", "show", "1", "--tree")
    assert code == 0
    assert out.splitlines() == [
        "Chat 1: What is the capital of France?  (7 messages, 3 branches; * = the branch shown)",
        "* #1 user: What is the capital of France?",
        "* ├─ #2 assistant: Paris.",
        "  │  ├─ #3 user: And of Korea?",
        "  │  │  #4 assistant (cut at the token limit): Seoul, on the",
        "* │  └─ #5 user: And of Japan?",
        "* │     #6 assistant (stopped): Tokyo",
        "  └─ #7 assistant: It is Paris. A big city.",
    ]
    # Without --tree: the branch shown, whole.
    code, out, _ = run(data, capsys, "chats", "show", "1")
    assert code == 0 and "Tokyo" in out and "Seoul" not in out and "It is Paris" not in out
    assert "## assistant · #6 (stopped)" in out


def test_chats_search_finds_korean_words_in_any_chat(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(data, capsys, "chats", "search", "한강")
    assert code == 0
    assert out.splitlines()[1].strip() == "[한강]이 흐르는 도시입니다."
    assert "(message #9)" in out.splitlines()[0]
    code, out, _ = run(data, capsys, "chats", "search", "서울", "--json")
    hits = json.loads(out)["hits"]
    assert [(h["chat_id"], h["message_id"]) for h in hits] == [(2, 8)]
    assert hits[0]["snippet"] == [["서울", True], ["은 어떤 도시인가요?", False]]
    code, out, _ = run(data, capsys, "chats", "search", "Tokyo", "capital")
    assert code == 0 and out.startswith("1  ")
    code, out, _ = run(data, capsys, "chats", "search", "zanzibar")
    assert (code, out) == (0, "No chat holds 'zanzibar'\n")
    code, out, _ = run(data, capsys, "chats", "search", 'AND( "')  # words, never syntax
    assert code == 0


def test_bad_chats_commands_say_what_is_wrong(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(data, capsys, "chats", "show", "77")[2] == "error: no chat with id 77\n"
    assert "must be a whole number" in run(data, capsys, "chats", "show", "x")[2]
    assert (
        "--limit must be from 1 to 100"
        in run(data, capsys, "chats", "search", "a", "--limit", "0")[2]
    )
    with pytest.raises(SystemExit) as caught:
        main(["--data-dir", str(data), "chats", "search"])  # no words
    assert caught.value.code == 2


def test_top_level_search_is_the_hub_search_and_points_to_chat_search(
    data: Path, project_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llm", "search", "--help"],
        capture_output=True,
        text=True,
        env=project_env,
        timeout=60,
    )
    assert done.returncode == 0
    assert "Search Hugging Face for GGUF repositories" in done.stdout
    assert "chats search" in " ".join(done.stdout.split())
    found = subprocess.run(
        [sys.executable, "-m", "llm", "--data-dir", str(data), "chats", "search", "한강"],
        capture_output=True,
        env=project_env,
        timeout=60,
    )
    assert found.returncode == 0 and "[한강]" in found.stdout.decode("utf-8")
