"""`python -m llm chats`: list stored chats, show one (`show ID [--tree]`), find chats by
words in their titles and messages (`search WORDS [--json]`).

`chats` alone lists them, pinned first, then the most recent; `chats show ID` prints the
visible branch, and with `--tree` every branch, indented at each fork, with `*` on the
messages of the branch shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from .chat_values import one_line
from .config import LOCAL_BACKEND, Config
from .errors import ConfigError

if TYPE_CHECKING:
    from .storage import ChatStore, StoredChat, StoredMessage

LINE_CHARS = 70  # of a message's text in a tree line


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `chats` command and its verbs (none: list)."""
    chats = commands.add_parser(
        "chats", help="list stored chats (pinned first, then the most recent); show, search"
    )
    chats.add_argument("--json", action="store_true", help="machine-readable output")
    verbs = chats.add_subparsers(dest="chats_verb", required=False)
    show = verbs.add_parser("show", help="print a chat's branch shown, or its whole tree")
    show.add_argument("chat_id", metavar="CHAT_ID")
    show.add_argument(
        "--tree", action="store_true", help="every branch, indented at forks; * = shown"
    )
    search = verbs.add_parser("search", help="find chats by words in their titles and messages")
    search.add_argument("words", nargs="+", metavar="WORDS")
    search.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    search.add_argument("--json", action="store_true", help="machine-readable output")


def chat_id(text: str) -> int:
    """A chat id typed by the user."""
    if not text.isdigit():
        raise ConfigError(f"chat id {text!r} must be a whole number (see: python -m llm chats)")
    return int(text)


def local_time(stamp: str) -> str:
    """A stored time as this machine's local time, to the minute."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def _out(text: str) -> None:
    # Bytes, so that a terminal in a non-UTF-8 locale cannot refuse a character.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def cmd_chats(args: argparse.Namespace, config: Config, store: Callable[[], ChatStore]) -> int:
    """`chats`, `chats show`, `chats search`; `store()` opens the chat database."""
    verb = getattr(args, "chats_verb", None)
    if verb == "show":
        return _show(args, store)
    if verb == "search":
        return _search(args, store)
    with store() as opened:
        chats = opened.list_chats()
        path = opened.path
    if args.json:
        rows = [dataclasses.asdict(chat) for chat in chats]
        print(json.dumps({"database": str(path), "chats": rows}, ensure_ascii=False, indent=2))
        return 0
    if not chats:
        print(f"No chats yet in {path}")
        return 0
    width = max(len(str(chat.id)) for chat in chats)
    lines = []
    for chat in chats:
        title = chat.title or "(untitled)"
        where = "" if chat.backend == LOCAL_BACKEND else f"{chat.backend}: "
        model = f"  [{where}{chat.model}]" if chat.model else ""
        pin = "(pinned) " if chat.pinned else ""
        lines.append(
            f"{chat.id:>{width}}  {local_time(chat.updated)}  {chat.message_count:>4} msgs  "
            f"{pin}{title}{model}\n"
        )
    _out("".join(lines))
    return 0


def _message_line(message: StoredMessage) -> str:
    text = one_line(message.content)
    if len(text) > LINE_CHARS:
        text = text[: LINE_CHARS - 1] + "…"
    note = "" if message.status == "complete" else f" ({message.status})"
    if message.status == "complete" and message.finish_reason == "length":
        note = " (cut at the token limit)"
    return f"#{message.id} {message.role}{note}: {text}"


def tree_lines(chat: StoredChat, tree: list[StoredMessage]) -> list[str]:
    """The chat's messages as lines: one branch runs straight down; at a fork each child is
    drawn with ├─ / └─ and its branch indented below it. `*` marks the branch shown."""
    shown = {message.id for message in chat.messages}
    children: dict[int | None, list[StoredMessage]] = {}
    for message in tree:  # parents first, children oldest first
        children.setdefault(message.parent_id, []).append(message)
    lines: list[str] = []
    # (message, prefix of its line, prefix of what follows below it); no recursion: a chat
    # can be thousands of messages deep.
    roots = children.get(None, [])
    stack = [
        (m, *_fork_prefixes("", i == len(roots) - 1, len(roots) > 1)) for i, m in enumerate(roots)
    ][::-1]
    while stack:
        message, prefix, below = stack.pop()
        mark = "*" if message.id in shown else " "
        lines.append(f"{mark} {prefix}{_message_line(message)}")
        kids = children.get(message.id, [])
        fork = len(kids) > 1
        stack += [
            (kid, *_fork_prefixes(below, i == len(kids) - 1, fork)) for i, kid in enumerate(kids)
        ][::-1]
    return lines


def _fork_prefixes(below: str, last: bool, fork: bool) -> tuple[str, str]:
    if not fork:
        return below, below
    return below + ("└─ " if last else "├─ "), below + ("   " if last else "│  ")


def _show(args: argparse.Namespace, store: Callable[[], ChatStore]) -> int:
    number = chat_id(args.chat_id)
    with store() as opened:
        chat = opened.get_chat(number)
        tree = opened.tree(number) if args.tree else list(chat.messages)
    head = f"Chat {chat.id}: {chat.title or '(untitled)'}"
    if args.tree:
        lines = tree_lines(chat, tree)
        branches = sum(1 for m in tree if not any(c.parent_id == m.id for c in tree))
        head += f"  ({len(tree)} messages, {branches} branches; * = the branch shown)"
    else:
        lines = [
            f"\n## {m.role} · #{m.id}{'' if m.status == 'complete' else f' ({m.status})'}\n\n"
            f"{m.content}"
            for m in chat.messages
        ]
    _out("\n".join([head, *lines]) + "\n")
    return 0


def _search(args: argparse.Namespace, store: Callable[[], ChatStore]) -> int:
    words = " ".join(args.words)
    if not 1 <= args.limit <= 100:
        raise ConfigError("--limit must be from 1 to 100")
    with store() as opened:
        hits = opened.search_chats(words, limit=args.limit)
    if args.json:
        rows = [dataclasses.asdict(hit) for hit in hits]
        print(json.dumps({"query": words, "hits": rows}, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print(f"No chat holds {words!r}")
        return 0
    width = max(len(str(hit.chat_id)) for hit in hits)
    lines = []
    for hit in hits:
        where = f"  (message #{hit.message_id})" if hit.message_id is not None else ""
        lines.append(f"{hit.chat_id:>{width}}  {local_time(hit.updated)}  {hit.title}{where}")
        snippet = "".join(f"[{text}]" if matched else text for text, matched in hit.snippet)
        lines.append(f"{' ' * width}  {snippet}")
    _out("\n".join(lines) + "\n")
    return 0
