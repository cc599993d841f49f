"""The command line for documents: `python -m llm docs add|index|list|search|remove` and the
`--docs NAME` option of `ask`. Wired into `llm.cli` by `add_parsers` and `COMMANDS`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .config import Config
from .documents.embedders import DEFAULT_EMBEDDER
from .documents.search import MODES
from .errors import LocalChatError


def add_parsers(commands: Any, ask: argparse.ArgumentParser) -> None:
    """Add the `docs` commands to `commands` and `--docs` to the `ask` parser."""
    ask.add_argument(
        "--docs",
        metavar="NAME",
        action="append",
        default=[],
        help="answer from this document collection (repeat for several); sources are printed "
        "after the reply",
    )
    docs = commands.add_parser("docs", help="collections of documents to chat with")
    docs.set_defaults(json=False)  # `docs` alone lists the collections, as `chats` lists chats
    verbs = docs.add_subparsers(dest="docs_command")
    add = verbs.add_parser(
        "add", help="create a collection or add folders and files to it, then index it"
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("paths", metavar="PATH", nargs="+", help="folders and files")
    add.add_argument(
        "--embedder",
        default=None,
        help=f"for a new collection: {DEFAULT_EMBEDDER} (default), gguf:FILE or "
        "remote:BACKEND/MODEL; for an existing one, switches (its passages are embedded again)",
    )
    index = verbs.add_parser("index", help="bring a collection's index up to date (resumes)")
    index.add_argument("name", metavar="NAME")
    listing = verbs.add_parser("list", help="list collections, with files that could not be read")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    search = verbs.add_parser("search", help="ranked passages of a collection for a query")
    search.add_argument("name", metavar="NAME")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    search.add_argument("--mode", choices=MODES, default="hybrid")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    remove = verbs.add_parser("remove", help="forget a collection (the files stay)")
    remove.add_argument("name", metavar="NAME")


def _library(config: Config) -> Any:
    from .documents.library import Library

    return Library(config)


@contextmanager
def _ctrl_c_sets(event: threading.Event) -> Iterator[None]:
    # Ctrl-C stops at the next batch; what is stored stays and the next run resumes there.
    previous = signal.signal(signal.SIGINT, lambda *_: event.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_progress() -> Callable[[Any], None]:
    shown = {"line": ""}
    live = sys.stderr.isatty()

    def show(progress: Any) -> None:
        line = progress.line()
        if line == shown["line"]:
            return
        shown["line"] = line
        if live:
            sys.stderr.write(f"\r\x1b[K{line}")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return show


def _index(library: Any, name: str) -> int:
    cancel = threading.Event()
    with _ctrl_c_sets(cancel):
        state = library.index(name, cancel=cancel, on_progress=_print_progress())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    info = library.collection(name)
    for record in library.files(name):
        if record.status == "failed":
            print(f"skipped {record.path}: {record.error}", file=sys.stderr)
        elif record.note:
            print(f"note: {record.path}: {record.note}", file=sys.stderr)
    print(
        f"{name}: {info.files_indexed} files indexed, {info.files_failed} skipped, "
        f"{info.chunks:,} passages ({state})"
    )
    if state == "failed":
        print(f"error: {info.progress.error}", file=sys.stderr)
        return 1
    return 0


def cmd_docs(args: argparse.Namespace, config: Config) -> int:
    """`docs add|index|list|search|remove` (`docs` alone: list)."""
    from .documents.errors import CollectionNotFoundError

    with _library(config) as library:
        verb = args.docs_command or "list"
        if verb == "add":
            try:
                library.add_paths(args.name, args.paths)
                if args.embedder:
                    library.set_embedder(args.name, args.embedder)
            except CollectionNotFoundError:
                library.create(args.name, args.paths, embedder=args.embedder or DEFAULT_EMBEDDER)
            return _index(library, args.name)
        if verb == "index":
            return _index(library, args.name)
        if verb == "list":
            return _list(library, args.json)
        if verb == "search":
            return _search(library, args)
        library.remove(args.name)
        print(f"removed collection {args.name}")
        return 0


def _list(library: Any, as_json: bool) -> int:
    collections = library.collections()
    if as_json:
        rows = []
        for info in collections:
            skipped = [
                {"path": r.path, "reason": r.error}
                for r in library.files(info.name)
                if r.status == "failed"
            ]
            rows.append({**info.to_dict(), "skipped": skipped})
        print(json.dumps({"collections": rows}, ensure_ascii=False, indent=2))
        return 0
    if not collections:
        print("No collections yet: python -m llm docs add NAME FOLDER...")
    for info in collections:
        print(
            f"{info.name}  {info.files_indexed} files, {info.chunks:,} passages, "
            f"embedder {info.embedder}, {info.progress.line()}"
        )
        for path in info.paths:
            print(f"    {path}")
        for record in library.files(info.name):
            if record.status == "failed":
                print(f"    skipped {record.path}: {record.error}")
    return 0


def _search(library: Any, args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 100:
        raise LocalChatError("-k must be 1 to 100")
    passages = library.search([args.name], args.query, k=args.k, mode=args.mode)
    if args.json:
        rows = [
            {key: value for key, value in p.to_dict().items() if value is not None}
            for p in passages
        ]
        print(json.dumps({"query": args.query, "passages": rows}, ensure_ascii=False, indent=2))
        return 0
    if not passages:
        print("Nothing found.")
    for number, passage in enumerate(passages, start=1):
        mark = "" if passage.relevant else "  (below the relevance threshold)"
        print(f"[{number}] {passage.label()}  score {passage.score:.4f}{mark}")
        print("    " + " ".join(passage.text.split())[:300])
    return 0


class DocsForAsk:
    """`ask --docs NAME`: the collections, checked before the model loads."""

    def __init__(self, config: Config, names: list[str]) -> None:
        self.library = _library(config)
        for name in names:
            self.library.store.collection(name)  # CollectionNotFoundError names it
        self.names = names
        self.context: Any = None

    def ask(self, log: Any, prompt: str, **options: Any) -> Any:
        from .documents.chat import ask_with_documents

        reply, self.context = ask_with_documents(log, self.library, prompt, self.names, **options)
        return reply

    def print_sources(self) -> None:
        context = self.context
        if context is None:
            return
        if context.nothing_relevant:
            print(
                f"(nothing relevant found in {', '.join(self.names)}: answered without documents)",
                file=sys.stderr,
            )
        else:
            print("\nSources:")
            for number, passage in enumerate(context.sources, start=1):
                print(f"[{number}] {passage.label()}  ({passage.source})")
        self.library.close()


def docs_for_ask(args: argparse.Namespace, config: Config) -> DocsForAsk | None:
    """The collections of `ask --docs`, or None without the option."""
    return DocsForAsk(config, list(dict.fromkeys(args.docs))) if args.docs else None


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {"docs": cmd_docs}
