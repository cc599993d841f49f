"""`python -m llm`: list models, show the exact prompt, chat from the terminal, manage chats.

Every `ask` is stored as a chat in the data folder's database (`chats`, `export`, `import`,
`ask --chat`). Errors a user can fix print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import documents_cli, hub_cli, remote_cli
from .config import FORMAT_CHOICES, LOCAL_BACKEND, Config, load_config
from .errors import ChatImportError, ConfigError, LocalChatError, ModelFileError
from .gguf_file import human_size
from .model_files import choose_format, read_model_file, resolve_model, scan_models
from .prompts import load_messages, render_prompt

if TYPE_CHECKING:
    from .chat_log import ChatLog
    from .storage import ChatStore

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="settings file (default: config.toml)")
    parser.add_argument("--models-dir", help="folder of .gguf files (default from config)")
    parser.add_argument(
        "--data-dir", help="folder of the chat database (default from config or LOCALCHAT_DATA_DIR)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the models in the models folder")
    models.add_argument("--json", action="store_true", help="machine-readable output")

    render = commands.add_parser("render", help="print the exact prompt for a conversation")
    render.add_argument("--model", required=True, help="file name in the models folder, or path")
    render.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    render.add_argument("--messages", required=True, help='JSON file: [{"role", "content"}]')

    ask = commands.add_parser("ask", help="stream a reply to PROMPT (stored as a chat)")
    ask.add_argument(
        "--model", help="file name in the models folder, or path (with --chat: the chat's model)"
    )
    ask.add_argument("--chat", metavar="CHAT_ID", help="continue a stored chat")
    ask.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    ask.add_argument("--system", default=None, help="system prompt (default from config)")
    ask.add_argument("--max-tokens", type=int)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("prompt")

    chats = commands.add_parser("chats", help="list stored chats, the most recent first")
    chats.add_argument("--json", action="store_true", help="machine-readable output")

    export = commands.add_parser("export", help="print a stored chat as Markdown or JSON")
    export.add_argument("chat_id", metavar="CHAT_ID")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("--output", "-o", help="write to this file instead of standard output")

    import_ = commands.add_parser("import", help="store a JSON export as a new chat")
    import_.add_argument("file", metavar="FILE.json")
    remote_cli.add_parsers(commands, ask)
    hub_cli.add_hub_parsers(commands)
    documents_cli.add_parsers(commands, ask)
    return parser


def _config(args: argparse.Namespace) -> Config:
    # Flags win over LOCALCHAT_* variables, which win over config.toml.
    return load_config(args.config).replace(models_dir=args.models_dir, data_dir=args.data_dir)


def _chat_id(text: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"chat id {text!r} must be a whole number (see: python -m llm chats)")
    return int(text)


def _store(config: Config) -> ChatStore:
    from .storage import ChatStore  # imported here: `models` and `render` need no database

    return ChatStore.in_folder(config.data_dir)


def _local_time(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def _write_text(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8", newline="\n")
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
        return
    # Bytes, so that a terminal in a non-UTF-8 locale cannot refuse a character.
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def cmd_models(args: argparse.Namespace, config: Config) -> int:
    entries = scan_models(config.models_dir)
    if args.json:
        rows = [
            {
                "file_name": e.file_name,
                "size_bytes": e.size_bytes,
                "chat_format": e.chat_format,
                "error": e.error,
                **(
                    {
                        k: v
                        for k, v in e.info.to_dict().items()
                        if k not in ("file_name", "size_bytes", "chat_template")
                    }
                    if e.info
                    else {}
                ),
            }
            for e in entries
        ]
        print(json.dumps({"models_dir": str(config.models_dir), "models": rows}, indent=2))
        return 0
    print(f"Models in {config.models_dir}:")
    if not entries:
        print("  (none: put .gguf files here)")
    for e in entries:
        if e.info is None:
            print(f"  {e.file_name}  [unusable] {e.error}")
            continue
        i = e.info
        print(
            f"  {e.file_name}\n"
            f"    {i.name} · {i.architecture} · {i.parameter_count / 1e9:.2f}B params · "
            f"{i.file_type} · context {i.context_length} · {human_size(e.size_bytes)} · "
            f"format {e.chat_format}"
        )
    return 0


def cmd_render(args: argparse.Namespace, config: Config) -> int:
    messages = load_messages(args.messages)
    info = read_model_file(resolve_model(args.model, config.models_dir))
    fmt = choose_format(args.format or config.chat_format, info)
    fallback = choose_format("chatml", None) if fmt.source == "gguf" else None
    rendered = render_prompt(fmt, messages, fallback=fallback)
    for warning in rendered.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(rendered.text)
    sys.stdout.flush()
    return 0


def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    from .chat_log import ChatLog, session_for_chat
    from .session import open_chat

    overrides = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
    docs = documents_cli.docs_for_ask(args, config)  # unknown collections refused first
    if args.chat is not None:
        if args.system is not None or args.format is not None:
            raise ConfigError("--system and --format cannot change a stored chat (--chat)")
        chat_id = _chat_id(args.chat)
        with _store(config) as store:
            chat = store.get_chat(chat_id)
            model = args.model or chat.model
            if not model:
                raise ModelFileError(f"chat {chat_id} has no model yet: name one with --model")
            # The chat continues where it was written (--backend moves it elsewhere).
            engine = (
                remote_cli.remote_engine(args, config, model, backend=chat.backend)
                or open_chat(model, config=config).engine
            )
            log = ChatLog(store, chat_id, session_for_chat(engine, chat, config=config))
            return _stream(log, args.prompt, overrides, docs)
    remote = remote_cli.remote_session(args, config)  # --backend: a server, not llama.cpp
    if remote is not None:
        with _store(config) as store:
            return _stream(ChatLog.start(store, remote), args.prompt, {}, docs)
    if not args.model:
        raise ConfigError("ask needs --model (or --chat CHAT_ID to continue a stored chat)")
    # A bad model name is refused before the database is touched.
    read_model_file(resolve_model(args.model, config.models_dir))
    with _store(config) as store:
        session = open_chat(
            args.model,
            config=config,
            chat_format=args.format,
            system_prompt=args.system,
            **overrides,
        )
        return _stream(ChatLog.start(store, session), args.prompt, {}, docs)


def _stream(
    log: ChatLog,
    prompt: str,
    overrides: dict[str, Any],
    docs: documents_cli.DocsForAsk | None = None,
) -> int:
    cancel = threading.Event()
    # Ctrl-C stops the reply but keeps (and saves) what was written, and prints the figures.
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        ask = docs.ask if docs else lambda log, prompt, **options: log.ask(prompt, **options)
        reply = ask(log, prompt, cancel=cancel, **overrides)
        for chunk in reply:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write("\n")
    if docs:
        docs.print_sources()
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    stopped = " (reply stopped)" if reply.status == "stopped" else ""
    print(f"saved in chat {log.chat_id}{stopped}", file=sys.stderr)
    print(reply.figures.line(), file=sys.stderr)
    log.session.engine.close()
    return 0


def cmd_chats(args: argparse.Namespace, config: Config) -> int:
    with _store(config) as store:
        chats = store.list_chats()
        path = store.path
    if args.json:
        rows = [dataclasses.asdict(chat) for chat in chats]
        print(json.dumps({"database": str(path), "chats": rows}, ensure_ascii=False, indent=2))
        return 0
    if not chats:
        print(f"No chats yet in {path}")
        return 0
    width = max(len(str(chat.id)) for chat in chats)
    for chat in chats:
        title = chat.title or "(untitled)"
        where = "" if chat.backend == LOCAL_BACKEND else f"{chat.backend}: "
        model = f"  [{where}{chat.model}]" if chat.model else ""
        print(
            f"{chat.id:>{width}}  {_local_time(chat.updated)}  {chat.message_count:>4} msgs  "
            f"{title}{model}"
        )
    return 0


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    chat_id = _chat_id(args.chat_id)
    with _store(config) as store:
        if args.format == "json":
            text = store.export_json(chat_id) + "\n"
        else:
            text = store.export_markdown(chat_id)
    _write_text(text, args.output)
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ChatImportError(f"cannot read {args.file}: {exc.strerror}") from None
    with _store(config) as store:
        chat_id = store.import_json(data)
    print(f"imported as chat {chat_id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        command = {
            "models": cmd_models,
            "render": cmd_render,
            "ask": cmd_ask,
            "chats": cmd_chats,
            "export": cmd_export,
            "import": cmd_import,
            **remote_cli.COMMANDS,
            **hub_cli.HUB_COMMANDS,
            **documents_cli.COMMANDS,
        }[args.command]
        return command(args, config)
    except LocalChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
