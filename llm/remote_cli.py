"""The command line for remote backends: `python -m llm backends [--models] [--json]` and the
`--backend NAME` option of `ask`. Wired into `llm.cli` by `add_parsers` and `COMMANDS`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import LOCAL_BACKEND, Backend, Config
from .errors import ConfigError, LocalChatError
from .model_files import scan_models
from .session import ChatSession

if TYPE_CHECKING:
    from .engines import Engines
    from .remote import RemoteEngine


def add_parsers(commands: Any, ask: argparse.ArgumentParser) -> None:
    """Add the `backends` command to `commands` and `--backend` to the `ask` parser."""
    ask.add_argument(
        "--backend",
        metavar="NAME",
        help=f"a [[backends]] server from config.toml (default: {LOCAL_BACKEND}, llama.cpp); "
        "--model then names one of the server's models (default: its default_model)",
    )
    backends = commands.add_parser("backends", help="list the configured backends")
    backends.add_argument(
        "--models", action="store_true", help="also ask each server for its models"
    )
    backends.add_argument("--json", action="store_true", help="machine-readable output")


def _key_state(backend: Backend) -> str:
    if not backend.api_key_env:
        return "no key"
    try:
        backend.api_key()
    except ConfigError:
        return f"key from ${backend.api_key_env} (NOT SET)"
    return f"key from ${backend.api_key_env}"


def _remote_row(backend: Backend, config: Config, with_models: bool) -> dict[str, Any]:
    from .remote import RemoteEngine

    row: dict[str, Any] = {
        "name": backend.name,
        "kind": "openai",
        "base_url": backend.base_url,
        "api_key_env": backend.api_key_env,
        "key": _key_state(backend),
        "default_model": backend.default_model,
        "n_ctx": backend.n_ctx,
    }
    if with_models:
        engine = RemoteEngine(backend, default_n_ctx=config.n_ctx)
        try:
            row["models"] = [m.id for m in engine.list_models()]
        except LocalChatError as exc:
            row["models"], row["error"] = [], str(exc)
        finally:
            engine.close()
    return row


def cmd_backends(args: argparse.Namespace, config: Config) -> int:
    """List "local" and every [[backends]] entry; with --models, what each offers."""
    local: dict[str, Any] = {
        "name": LOCAL_BACKEND,
        "kind": "llama.cpp",
        "models_dir": str(config.models_dir),
    }
    if args.models:
        local["models"] = [e.file_name for e in scan_models(config.models_dir) if e.info]
    rows = [local, *(_remote_row(b, config, args.models) for b in config.backends)]
    if args.json:
        print(json.dumps({"backends": rows}, ensure_ascii=False, indent=2))
        return 0
    for row in rows:
        if row["kind"] == "llama.cpp":
            print(f"{row['name']}  llama.cpp in LocalChat, models in {row['models_dir']} (default)")
        else:
            default = f", default model {row['default_model']}" if row["default_model"] else ""
            print(f"{row['name']}  {row['base_url']}, {row['key']}{default}")
        if "error" in row:
            print(f"    error: {row['error']}")
        elif "models" in row:
            print(f"    models: {', '.join(row['models']) or '(none)'}")
    return 0


def remote_engine(
    args: argparse.Namespace, engines: Engines, model: str = "", backend: str | None = None
) -> RemoteEngine | None:
    """The RemoteEngine for `ask --backend NAME` (or `backend`, e.g. a stored chat's), with
    `model` chosen; None for local."""
    name = args.backend or backend
    if not name or name == LOCAL_BACKEND:
        return None
    if args.format:
        raise ConfigError(
            f"--format applies to local models only: backend {name!r} uses the "
            f"chat template of the server"
        )
    engine = engines.remote(name, model)
    engine.load(model)
    return engine


def remote_session(args: argparse.Namespace, engines: Engines) -> ChatSession | None:
    """A session for `ask --backend NAME [--model M]`; None when the backend is local."""
    engine = remote_engine(args, engines, args.model or "")
    if engine is None:
        return None
    config = engines.config
    return ChatSession(
        engine,
        system_prompt=config.system_prompt if args.system is None else args.system,
        params=config.sampling.replace(
            max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed
        ),
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, Config], int]] = {"backends": cmd_backends}
