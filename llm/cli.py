"""`python -m llm`: list models, show the exact prompt, and chat from the terminal.

Errors a user can fix print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from .config import FORMAT_CHOICES, Config, load_config
from .errors import LocalChatError
from .gguf_file import human_size
from .model_files import choose_format, read_model_file, resolve_model, scan_models
from .prompts import load_messages, render_prompt

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="settings file (default: config.toml)")
    parser.add_argument("--models-dir", help="folder of .gguf files (default from config)")
    commands = parser.add_subparsers(dest="command", required=True)

    models = commands.add_parser("models", help="list the models in the models folder")
    models.add_argument("--json", action="store_true", help="machine-readable output")

    render = commands.add_parser("render", help="print the exact prompt for a conversation")
    render.add_argument("--model", required=True, help="file name in the models folder, or path")
    render.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    render.add_argument("--messages", required=True, help='JSON file: [{"role", "content"}]')

    ask = commands.add_parser("ask", help="stream a reply to PROMPT")
    ask.add_argument("--model", required=True, help="file name in the models folder, or path")
    ask.add_argument("--format", default=None, choices=FORMAT_CHOICES)
    ask.add_argument("--system", default=None, help="system prompt (default from config)")
    ask.add_argument("--max-tokens", type=int)
    ask.add_argument("--temperature", type=float)
    ask.add_argument("--seed", type=int)
    ask.add_argument("prompt")
    return parser


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return config.replace(models_dir=args.models_dir) if args.models_dir else config


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
    from .session import open_chat

    chat = open_chat(
        args.model,
        config=config,
        chat_format=args.format,
        system_prompt=args.system,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
    )
    cancel = threading.Event()
    # Ctrl-C stops the reply but keeps what was written and still prints the figures.
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        reply = chat.ask(args.prompt, cancel=cancel)
        for chunk in reply:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write("\n")
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(reply.figures.line(), file=sys.stderr)
    chat.engine.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        command = {"models": cmd_models, "render": cmd_render, "ask": cmd_ask}[args.command]
        return command(args, config)
    except LocalChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
