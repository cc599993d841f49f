"""The web server LocalChat's pages run on, and how Taipy runs it.

`make_server` builds the Flask app with every guard and route of `web/`: host, origin and token
checks (web/access.py), the OpenAI-compatible API when it is on (web/api.py), bounded uploads
(web/uploads.py), the page scripts (web/page_scripts.py), the live reply streams (web/live.py),
the conversation view (web/chat_view.py) and the local-only policy (web/local_only.py).
`run_settings` are the arguments of Taipy's `Gui.run` for it.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask

from llm.config import Config
from llm.openai_api import OpenAIService

from .access import allowed_host_names, make_guarded_flask
from .api import add_api_routes
from .chat_view import add_view_routes
from .live import add_live_route
from .local_only import FAVICON, add_local_only_policy
from .page_scripts import add_page_scripts
from .taipy_state import install as speed_up_state
from .uploads import add_upload_guard, configure_uploads, upload_folder

MAX_SOCKET_MESSAGE_BYTES = 16 * 1024 * 1024


def make_server(config: Config, api: OpenAIService | None = None) -> Flask:
    """The Flask app for `config`, with every check and route the pages need, and the
    OpenAI-compatible API under /v1 when `api` is given (web/api.py)."""
    speed_up_state()  # state reads and writes without inspect.stack() (web/taipy_state.py)
    server = make_guarded_flask(
        "LocalChat",
        access_token=config.access_token,
        title=config.title,
        allowed_hosts=allowed_host_names(config.host, config.allowed_hosts),
        cors_origins=config.api_cors_origins,
    )
    if api is not None:
        add_api_routes(server, api)  # /v1 beside the pages, on the same engines and queue
    configure_uploads(config.data_dir, config.max_upload_mb * 1024 * 1024)
    add_upload_guard(server)  # size limit; only the uploading tab reads its file
    add_page_scripts(server)  # one state per browser tab; the input keeps the focus
    add_live_route(server)  # replies stream to the page beside Taipy's state
    add_view_routes(server)  # the conversation component's data, events and actions
    add_local_only_policy(server)  # the pages load nothing from other sites
    return server


def run_settings(config: Config) -> dict[str, Any]:
    """The keyword arguments of `Gui.run` for the app."""
    return {
        "title": config.title,
        "host": config.host,
        "port": config.port,
        "dark_mode": config.dark_mode,
        # Threads, not gevent: updates pushed from the reply thread reach the browser at once
        # (under gevent they wait for the next websocket ping, ~5 s).
        "async_mode": "threading",
        "allow_unsafe_werkzeug": True,
        "use_reloader": False,  # the reloader would run main.py (and load the model) twice
        "run_browser": sys.stdin.isatty() and sys.stdout.isatty(),
        "watermark": "",
        "upload_folder": str(upload_folder()),
        "favicon": FAVICON,
        "server_config": {
            # Taipy lets any web site's scripts talk to the app (CORS "*"); allow only pages
            # the app itself served.
            "cors": False,
            "socketio": {
                "cors_allowed_origins": None,
                # Flask-SocketIO 5.4's session handling fails on Flask 3.1.3 ("property
                # 'session' of 'RequestContext' object has no setter"); Taipy needs none.
                "manage_session": False,
                # Engine.IO drops the connection on a message over 1 MB (its default), so a
                # long paste would vanish without a word; this carries the longest message a
                # chat accepts (llm.session.MAX_MESSAGE_CHARS), which is then refused with a
                # message if it cannot fit.
                "max_http_buffer_size": MAX_SOCKET_MESSAGE_BYTES,
            },
        },
        "stylekit": {
            "color_primary": "#ff462b",
            "color_secondary": "#7c5cff",
            "color_background_dark": "#0d0714",
            "color_paper_dark": "#1b1226",
            "color_background_light": "#f7f4f9",
            "color_paper_light": "#ffffff",
            "font_family": "Lato, 'Noto Sans KR', 'Noto Sans CJK KR', Arial, sans-serif",
        },
    }
