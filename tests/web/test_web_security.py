"""The web app attacked as a stranger would: hostile page variables over a real tab's websocket,
foreign Host headers (DNS rebinding), cross-site and oversized uploads.

`python main.py` runs as a subprocess; Chromium drives a real tab whose websocket is
intercepted (Playwright's `route_web_socket`), so the hostile messages travel exactly as the
page's own do, with the tab's own client id.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect
from support.browser import (
    RunningApp,
    go_to,
    list_notice,
    notifications,
    open_chat_row,
    open_page,
    running_app,
    send_message,
    wait_for_reply_end,
)
from support.gguf_factory import write_scripted_model
from support.replies import REPLY, SCRIPT

from llm.storage import ChatStore

pytestmark = pytest.mark.timeout(300)

MODEL = "tinyllama-scripted.gguf"
CONFIG = """
[app]
max_upload_mb = 2

[inference]
n_ctx = 1024
n_threads = 1
"""
SENTINEL_TITLE = "SENTINEL-IMPORT-must-never-be-read"
# "name_TPMDL_<n>": a page variable of page module n, as the server names it to the page
# (also inside the names of expressions that use it, in the page's markup).
_SENT_VARIABLE = re.compile(r'"name":\s*"([a-z][a-z0-9_]*)_TPMDL_(\d+)"')
_USED_VARIABLE = re.compile(r"TpExPr_([A-Za-z0-9_]+?)_TPMDL_(\d+)")
_ACK = re.compile(r'"type":\s*"ACK",\s*"id":\s*"([0-9a-f]+)"')
_NAVBAR_PAGE = re.compile(r"&quot;/([A-Za-z_]+)&quot;")
_EMBEDDED_PAGE = re.compile(r'defaultPage="([A-Za-z_]+)"')
_CALLBACK = re.compile(r'\bon[A-Z][A-Za-z]*="([A-Za-z_][A-Za-z0-9_]*)"')


@pytest.fixture(scope="module")
def app(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("security-models")
    shutil.copyfile(models_dir / MODEL, folder / MODEL)
    work = tmp_path_factory.mktemp("security-app")
    # The Hub's callbacks are fired too: offline they fail at once instead of retrying.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        with running_app(work, folder, config_toml=CONFIG, args=("--model", MODEL)) as running:
            yield running


def _request(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _fingerprint(paths: list[Path]) -> dict[str, str]:
    """Each file's sha256 ("missing" when gone)."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "missing"
        for p in paths
    }


# Hostile page variables --------------------------------------------------------------------


class _Socket:
    """A tab's websocket, passed through, with what the server sent recorded and a way to send
    the tab's own kind of messages."""

    def __init__(self) -> None:
        self.server: WebSocketRoute | None = None
        self.from_server: list[str] = []
        self.from_page: list[str] = []
        self.sent: set[str] = set()  # ack ids of the messages this test sent
        self.acked: set[str] = set()

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.server = server

        def up(message: str | bytes) -> None:
            if isinstance(message, str):
                self.from_page.append(message)
            server.send(message)

        def down(message: str | bytes) -> None:
            if isinstance(message, str):
                self.from_server.append(message)
                self.acked.update(_ACK.findall(message))
            ws.send(message)

        ws.on_message(up)
        server.on_message(down)

    def send(
        self, client_id: str, kind: str, name: str, payload: dict[str, Any], module: str
    ) -> None:
        """A Taipy message as the page sends it (Socket.IO event "message")."""
        message = {
            "type": kind,
            "name": name,
            "payload": payload,
            "propagate": True,
            "client_id": client_id,
            "ack_id": uuid.uuid4().hex,
            "module_context": module,
        }
        assert self.server is not None
        self.sent.add(message["ack_id"])
        self.server.send("42" + json.dumps(["message", message]))

    def wait_until_handled(self, page: Page, timeout_s: float) -> None:
        """Until the server has handled what this test sent: it acknowledges each message it
        handled without an error (an update of a name that is no variable gets no answer), and
        says nothing more once it is done."""
        deadline = time.monotonic() + timeout_s
        heard = -1
        while self.sent - self.acked and heard != len(self.from_server):
            heard = len(self.from_server)
            assert time.monotonic() < deadline, f"{len(self.sent - self.acked)} not handled"
            page.wait_for_timeout(3000)  # Playwright delivers the socket's messages meanwhile


def _page_markup(page: Page, app: RunningApp, name: str) -> str:
    """The markup Taipy serves the browser for the page `name`."""
    client_id = page.evaluate("() => sessionStorage.getItem('TaipyClientId')")
    status, body = _request(f"{app.url}taipy-jsx/{name}?client_id={client_id}")
    assert status == 200
    return json.loads(body)["jsx"]


def _export_json(title: str) -> str:
    return json.dumps(
        {
            "format": "localchat-chat",
            "version": 1,
            "chat": {
                "title": title,
                "system_prompt": "",
                "settings": {},
                "model": MODEL,
                "chat_format": "auto",
                "messages": [{"role": "user", "content": "hello"}],
            },
        }
    )


def test_hostile_page_variables_reach_nothing_outside_the_app(
    app: RunningApp, browser: Browser, tmp_path: Path
) -> None:
    """Every page variable either page exposes, set to hostile values (files outside the app,
    `../` paths, the app's own database and config, other chats' ids, huge strings, wrong
    types), then every callback either page binds fired: no file outside the app is read,
    changed or deleted, nothing of the app's own files is touched by it, and the app keeps
    serving. Variables and callbacks are read from the app itself, so new ones are covered.
    (This app listens on 127.0.0.1 only, where a folder typed in the documents page may be any
    of the machine's but the app's own, by design: test_web_documents.py checks the rule for an
    app others can reach.)"""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "notes.txt"
    secret.write_text("my private notes\n", encoding="utf-8")
    export = outside / "chat-export.json"
    export.write_text(_export_json(SENTINEL_TITLE), encoding="utf-8")
    foreign_model = outside / "foreign.gguf"
    shutil.copyfile(app.models_dir / MODEL, foreign_model)
    work = app.data_dir.parent
    watched = [
        secret,
        export,
        foreign_model,
        work / "config.toml",
        app.models_dir / MODEL,
    ]
    before = _fingerprint(watched)
    with ChatStore.in_folder(app.data_dir) as store:
        ids = [str(store.create_chat(title=f"kept {i}")) for i in range(2)]

    socket_ = _Socket()
    page = browser.new_page()
    page.route_web_socket(re.compile(r".*/socket\.io/.*"), socket_.route)
    page.goto(app.url)
    page.wait_for_selector("#navbar")
    go_to(page, "Models")
    expect(page.locator("#loaded_line")).to_contain_text(MODEL)
    go_to(page, "Chat")
    expect(page.locator("#model_line")).to_contain_text(MODEL)

    # Every variable a page uses or the server sent it, by page module (number -> context);
    # names of expressions that are not variables are ignored by the server.
    # The pages: the navbar's, and the pages shown inside them (found in their markup).
    modules: dict[str, str] = {}
    callbacks: dict[str, set[str]] = {}
    found: set[tuple[str, str]] = set()
    to_visit = _NAVBAR_PAGE.findall(_page_markup(page, app, "TaiPy_root_page"))
    visited: set[str] = set()
    while to_visit:
        name = to_visit.pop()
        if name in visited:
            continue
        visited.add(name)
        markup = _page_markup(page, app, name)
        to_visit += _EMBEDDED_PAGE.findall(markup)
        used = set(_USED_VARIABLE.findall(markup))
        modules.update({number: f"pages.{name}" for _, number in used})
        callbacks[f"pages.{name}"] = set(_CALLBACK.findall(markup))
        found |= used
    assert {"chat", "models", "downloads", "first_model", "documents"} <= visited
    found |= {v for raw in socket_.from_server for v in _SENT_VARIABLE.findall(raw)}
    # Expressions (`not busy`, `dl_title[0]`, lov adapters) are named like variables; the
    # server ignores an update of a name that is not a variable, so skipping them saves time.
    variables = sorted(
        (f"{v}_TPMDL_{n}", modules[n])
        for v, n in found
        if n in modules and not v.startswith(("not_", "len_", "gui_")) and "SqrOp" not in v
    )
    # The pages' own variables and callbacks are all there (a broken scan would test nothing).
    names = {v.rsplit("_TPMDL_", 1)[0] for v, _ in variables}
    assert {"import_path", "draft", "list_version", "selected_model", "chosen_file"} <= names
    assert {"folder_path", "upload_paths", "doc_embedder", "docs_chosen", "whole_choice"} <= names
    assert {
        "import_chat",
        "send",
        "load_model",
        "hub_download",
        "get_starter",
        "add_folder",
        "upload_files",
        "remove_answer",
    } <= set().union(*callbacks.values())
    data = app.data_dir.resolve()
    hostile: list[Any] = [
        str(export),
        str(secret),
        str(foreign_model),
        "../" * 12 + str(secret).lstrip("/"),
        str(app.models_dir / ".." / ".." / "outside" / "notes.txt"),
        str(data / "localchat.db"),
        str(work / "config.toml"),
        str(data / "uploads" / ".." / "localchat.db"),
        *ids,
        99_999_999,
        -1,
        0,
        "x" * 300_000,
        None,
        [str(secret)],
        {"path": str(export)},
    ]
    client_id = page.evaluate("() => sessionStorage.getItem('TaipyClientId')")
    for value in hostile:
        for variable, module in variables:
            socket_.send(client_id, "U", variable, {"value": value}, module)
        for module, names_ in callbacks.items():
            for name in sorted(names_):
                payload = {"action": name, "args": [value, value, value], "path": value}
                socket_.send(client_id, "A", "hostile", payload, module)
    socket_.wait_until_handled(page, 180)
    time.sleep(3)  # callbacks that went on in threads (loads, downloads) end

    assert _fingerprint(watched) == before, "a file was read into, changed or deleted"
    with ChatStore.in_folder(app.data_dir) as store:
        titles = [chat.title for chat in store.list_chats()]
    assert SENTINEL_TITLE not in titles, "a file outside the app was imported"
    assert list((data / "uploads").iterdir()) == []
    page.close()

    # The app still serves: a new tab chats with the model of its own folder.
    fresh = open_page(browser, app.url)
    expect(fresh.locator("#model_line")).to_contain_text(MODEL)
    send_message(fresh, "Still there?")
    assert REPLY in wait_for_reply_end(fresh)
    fresh.close()


# DNS rebinding -----------------------------------------------------------------------------


ROUTES = ("/", "/chat", "/models", "/main.css", "/socket.io/?EIO=4&transport=polling")


def test_a_foreign_host_name_is_refused_on_every_route(app: RunningApp) -> None:
    """A page whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name as
    Host: every route answers 400, the websocket handshake too; the app's own names work."""
    base = app.url.rstrip("/")
    port = base.rsplit(":", 1)[1]
    for route in ROUTES:
        status, _ = _request(base + route, headers={"Host": f"evil.example:{port}"})
        assert status == 400, route
        status, _ = _request(base + route, headers={"Host": f"localhost:{port}"})
        assert status == 200, route
    upgrade = {
        "Host": f"rebind.attacker.example:{port}",
        "Origin": f"http://rebind.attacker.example:{port}",
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    status, _ = _request(base + "/socket.io/?EIO=4&transport=websocket", headers=upgrade)
    assert status == 400


def _lan_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_on_all_interfaces_the_machine_s_own_names_are_answered(
    models_dir: Path, tmp_path: Path
) -> None:
    """Listening on 0.0.0.0 (LAN mode, with a token): a request naming this machine's LAN
    address or host name gets the app (its login form), a foreign name gets 400."""
    token = "correct horse battery staple"
    config = f'[app]\nhost = "0.0.0.0"\naccess_token = "{token}"\n'
    with running_app(tmp_path, models_dir, config_toml=config) as running:
        base = running.url.rstrip("/")
        port = base.rsplit(":", 1)[1]
        names = [socket.gethostname()]
        if (lan := _lan_address()) is not None:
            names.append(lan)
        for name in names:
            status, body = _request(base + "/", headers={"Host": f"{name}:{port}"})
            assert status == 401 and b"access token" in body, name
            status, _ = _request(
                base + "/", headers={"Host": f"{name}:{port}", "Authorization": f"Bearer {token}"}
            )
            assert status == 200, name
        status, _ = _request(base + "/", headers={"Host": f"evil.example:{port}"})
        assert status == 400


# Uploads -----------------------------------------------------------------------------------


def _multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    lines: list[bytes] = []
    for key, value in fields.items():
        lines += [
            f"--{boundary}".encode(),
            f'Content-Disposition: form-data; name="{key}"'.encode(),
            b"",
            value.encode(),
        ]
    lines += [
        f"--{boundary}".encode(),
        f'Content-Disposition: form-data; name="blob"; filename="{file_name}"'.encode(),
        b"Content-Type: application/json",
        b"",
        content,
        f"--{boundary}--".encode(),
        b"",
    ]
    return b"\r\n".join(lines), f"multipart/form-data; boundary={boundary}"


def _upload(app: RunningApp, content: bytes, headers: dict[str, str], **fields: str) -> int:
    body, content_type = _multipart(
        {"var_name": "import_path", "multiple": "False", **fields}, "export.json", content
    )
    status, _ = _request(
        f"{app.url}taipy-uploads?client_id=outsider",
        method="POST",
        data=body,
        headers={"Content-Type": content_type, **headers},
    )
    return status


def _files_named(folder: Path, pattern: str) -> list[Path]:
    return [p for p in folder.rglob(pattern) if p.is_file()] if folder.is_dir() else []


def test_other_sites_cannot_post_uploads_and_big_uploads_are_refused(app: RunningApp) -> None:
    """A cross-site form post (no preflight) to the upload route is refused whatever its
    Origin or Referer says it came from; no file is written, in the app's uploads folder or in
    the system's temporary folder. A file over `max_upload_mb` (2 MB here) is refused before
    it is written, sent whole or in parts."""
    uploads = app.data_dir / "uploads"
    marker = uuid.uuid4().hex.encode()
    content = _export_json("cross-site").encode() + b" " * 10 + marker
    base = app.url.rstrip("/")
    refused = [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page.html"},
        {"Origin": base.replace("127.0.0.1", "localhost")},  # another origin, same machine
    ]
    for headers in refused:
        assert _upload(app, content, headers) == 403, headers
    big = b"x" * (3 * 1024 * 1024)
    assert _upload(app, big, {"Origin": base}) == 413
    assert _upload(app, b"x" * 1000, {"Origin": base}, total="4", part="0") == 413
    time.sleep(0.5)
    # Taipy's own default upload folder is the system's temporary folder.
    candidates = _files_named(uploads, "*") + list(Path(tempfile.gettempdir()).glob("export*"))
    written = [p for p in candidates if marker in p.read_bytes() or p.stat().st_size >= len(big)]
    assert written == []


# Hostile chat templates --------------------------------------------------------------------

LOOPING_TEMPLATE = (
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
)


def test_a_model_whose_template_never_ends_blocks_no_page(browser: Browser, tmp_path: Path) -> None:
    """A model file whose chat template loops for hours, loaded and first in the folder:
    every new tab still opens at once; the models page's preview and the chat fall back to
    ChatML, and the preview says why."""
    folder = tmp_path / "models"
    folder.mkdir()
    name = "aaa-looping.gguf"
    write_scripted_model(folder / name, SCRIPT, name="Looping", chat_template=LOOPING_TEMPLATE)
    with running_app(tmp_path / "app", folder, config_toml=CONFIG, args=("--model", name)) as app:
        for _ in range(2):  # the first tab, and a tab after the template was found out
            started = time.monotonic()
            page = open_page(browser, app.url + "models")
            expect(page.locator("#model_table")).to_contain_text(name)
            assert time.monotonic() - started < 8
            preview = page.locator("#prompt_preview")
            expect(preview).to_contain_text("took longer than", timeout=15_000)
            expect(preview).to_contain_text("<|im_start|>user")
            page.close()
        page = open_page(browser, app.url)
        send_message(page, "Hello")
        assert REPLY in wait_for_reply_end(page)
        page.close()


def test_an_import_reads_its_own_upload_from_the_app_s_folder_and_removes_it(
    app: RunningApp, browser: Browser, tmp_path: Path
) -> None:
    """Through the page: the upload lands in the data folder's uploads (not the system's
    temporary folder), becomes a chat, and is removed; a file over the limit is refused with
    the limit named, and no "Uploaded" notice precedes a refusal."""
    export = tmp_path / "mine.json"
    export.write_text(_export_json("Imported here"), encoding="utf-8")
    page = open_page(browser, app.url)
    page.locator("#import_json-upload-file").set_input_files(export)
    expect(open_chat_row(page)).to_have_text("Imported here")
    expect(list_notice(page)).to_contain_text("Imported “Imported here”")
    assert list((app.data_dir / "uploads").iterdir()) == []
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b" " * (3 * 1024 * 1024) + b"]")
    page.locator("#import_json-upload-file").set_input_files(big)
    expect(list_notice(page)).to_contain_text("files can have at most 2 MB")
    expect(notifications(page)).to_have_count(0)  # said in the list; never "Uploaded"
    assert list((app.data_dir / "uploads").iterdir()) == []
    page.close()
