"""The OpenAI-compatible API over real HTTP: `python main.py --api` (beside the pages) and
`--api --no-pages` (headless) on 127.0.0.1, real llama.cpp on scripted models, driven by the
official `openai` client, LangChain's `ChatOpenAI`, and raw sockets where a client must
misbehave. Also the closing loop: a second LocalChat whose [[backends]] entry is this one's /v1.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from langchain_openai import ChatOpenAI
from support.browser import RunningApp, run_main, running_app
from support.commands import run_llm
from support.replies import REPLY

from llm.engine import Engine
from llm.prompts import get_format

pytestmark = pytest.mark.timeout(180)

TOKEN = "api-test-token-7d1e0c"
LOADED = "tinyllama-scripted.gguf"
CONFIG = "[inference]\nn_ctx = 1024\nn_threads = 1\ntemperature = 0.0\n"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def app(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """Headless: the API alone, the scripted TinyLlama model loaded."""
    work = tmp_path_factory.mktemp("api-headless")
    args = ("--api", "--no-pages", "--model", LOADED)
    with running_app(work, models_dir, config_toml=CONFIG, args=args) as running:
        yield running


def _client(app: RunningApp, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.url}v1", api_key=key, max_retries=0, timeout=60)


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.post(url, content=body, headers=headers or {}, timeout=30)


def test_the_openai_client_lists_models_and_chats(app: RunningApp, engine: Engine) -> None:
    client = _client(app)
    models = client.models.list().data
    assert [m.id for m in models] == [LOADED, "chatml-scripted.gguf"]
    assert models[0].model_extra["loaded"] is True and models[1].model_extra["loaded"] is False

    answer = client.chat.completions.create(model=LOADED, messages=HI)
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    # Usage is the tokenizer's count: the prompt as the worker tokenized it, one per piece.
    prompt_ids = engine.tokenize(HI, get_format("zephyr"))
    assert answer.usage.prompt_tokens == len(prompt_ids)
    assert answer.usage.completion_tokens == 7 and answer.usage.total_tokens == len(prompt_ids) + 7

    stream = client.chat.completions.create(
        model=LOADED, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert "".join(pieces) == REPLY and len(pieces) == 7  # token by token, not in one piece
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert chunks[-2].choices[0].finish_reason == "stop"

    stopped = client.chat.completions.create(model=LOADED, messages=HI, stop=[" of", " is"])
    assert stopped.choices[0].message.content == "Paris"

    completion = client.completions.create(model=LOADED, prompt="Hi", max_tokens=3)
    assert completion.choices[0].text == "Paris is the"
    assert completion.choices[0].finish_reason == "length"
    streamed = client.completions.create(model=LOADED, prompt="Hi", stream=True, stop=["."])
    assert "".join(c.choices[0].text for c in streamed if c.choices) == REPLY[:-1]


def test_langchain_chat_openai(app: RunningApp) -> None:
    chat = ChatOpenAI(
        model=LOADED, base_url=f"{app.url}v1", api_key="unused", max_retries=0, temperature=0
    )
    answer = chat.invoke("Hi")
    assert answer.content == REPLY and answer.usage_metadata["output_tokens"] == 7
    chunks = list(
        ChatOpenAI(
            model=LOADED, base_url=f"{app.url}v1", api_key="unused", stream_usage=True
        ).stream("Hi")
    )
    assert "".join(c.content for c in chunks) == REPLY
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) == 7


def test_wrong_input_gets_openai_errors(app: RunningApp) -> None:
    client = _client(app)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=LOADED, messages=HI, temperature="hot")  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == "temperature"
    assert caught.value.body["message"] == "temperature: must be a number, not a string"

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert f"the loaded model is '{LOADED}'" in caught.value.body["message"]

    url = f"{app.url}v1/chat/completions"
    for body, status, code in [
        (b"{not json", 400, "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "invalid_json"),  # nested past any parser
        (b" " * (16 * 1024 * 1024 + 1), 413, None),
    ]:
        response = _post(url, body)
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
    gone = httpx2.get(f"{app.url}v1/nothing-here", timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    wrong = httpx2.get(url, timeout=10)
    assert wrong.status_code == 405 and "takes POST" in wrong.json()["error"]["message"]


def test_embeddings_from_the_documents_embedder(app: RunningApp) -> None:
    client = _client(app)
    # The openai client asks for base64 by default and decodes it.
    rows = client.embeddings.create(input=["Seoul is in Korea", "Paris"], model="wordllama").data
    assert [len(r.embedding) for r in rows] == [256, 256]
    assert abs(sum(x * x for x in rows[0].embedding) - 1) < 1e-4
    # The model left out (the openai client always names one): the default embedder.
    plain = _post(f"{app.url}v1/embeddings", json.dumps({"input": "Paris"}).encode()).json()
    assert plain["data"][0]["embedding"] == pytest.approx(rows[1].embedding, abs=1e-6)
    assert plain["model"] == "wordllama" and plain["usage"]["prompt_tokens"] >= 1
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(input="x", model="text-embedding-3-small")
    assert "available: wordllama" in caught.value.body["message"]


def _read_chunks(sock: socket.socket, count: int) -> bytes:
    seen = b""
    deadline = time.monotonic() + 30
    while seen.count(b"data: ") < count and time.monotonic() < deadline:
        seen += sock.recv(65536)
    return seen


def _first_token_after(app: RunningApp, started: float) -> float:
    """Seconds from `started` to the first text of a new streamed request."""
    client = _client(app)
    for chunk in client.chat.completions.create(messages=HI, model="", stream=True, max_tokens=3):
        if chunk.choices and chunk.choices[0].delta.content:
            return time.monotonic() - started
    raise AssertionError("no text")


def test_a_client_leaving_frees_the_worker_at_once(long_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "long.gguf").symlink_to(long_model)
    args = ("--api", "--no-pages", "--model", "long.gguf")
    config = CONFIG.replace("n_ctx = 1024", "n_ctx = 4096")  # room for a reply of seconds
    with running_app(tmp_path / "app", folder, config_toml=config, args=args) as app:
        # ignore_eos: the reply goes on for seconds (the script ends, the sampling does not).
        body = {
            "model": "long.gguf",
            "messages": HI,
            "stream": True,
            "max_tokens": 4000,
            "ignore_eos": True,
        }
        client = _client(app)

        def holder() -> openai.Stream:
            fields = {k: v for k, v in body.items() if k != "ignore_eos"}
            return client.chat.completions.create(**fields, extra_body={"ignore_eos": True})

        whole = time.monotonic()
        finished = list(holder())
        full_s = time.monotonic() - whole
        assert full_s > 2.0, "the reply must last long enough to tell a stop from its end"
        assert finished[-1].choices[0].finish_reason == "length"

        port = int(app.url.rsplit(":", 1)[1].strip("/"))
        # What a request takes to its first text on an idle worker here (a busy machine slows
        # it): "starts within a second" is a second on top of it.
        idle = max(_first_token_after(app, time.monotonic()) for _ in range(3))
        limit = 1.0 + idle
        assert limit < full_s / 2

        def send(stream: bool) -> socket.socket:
            data = json.dumps({**body, "stream": stream}).encode()
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data
            )
            return sock

        # Streaming: the client leaves mid-reply.
        sock = send(stream=True)
        assert b'"content": " w1"' in _read_chunks(sock, 3)
        sock.close()
        # The next request starts within a second, not after the abandoned reply.
        assert _first_token_after(app, time.monotonic()) < limit

        # Not streaming: nothing is written until the end, so only watching the connection
        # tells that the client left.
        sock = send(stream=False)
        time.sleep(0.5)  # the reply is being written
        sock.close()
        assert _first_token_after(app, time.monotonic()) < limit

        # Waiting in the queue behind another reply, then leaving: it never runs.
        running = holder()
        next(iter(running))
        sock = send(stream=False)
        time.sleep(0.3)  # in the queue now
        sock.close()
        running.close()  # the holder's client leaves too
        assert _first_token_after(app, time.monotonic()) < limit


@pytest.fixture(scope="module")
def guarded(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """With the pages (Taipy), an access token and one CORS origin."""
    work = tmp_path_factory.mktemp("api-pages")
    config = CONFIG + '[api]\nenabled = true\ncors_origins = ["http://localhost:3000"]\n'
    with running_app(
        work,
        models_dir,
        config_toml=config,
        args=("--model", LOADED),
        env={"LOCALCHAT_ACCESS_TOKEN": TOKEN},
    ) as running:
        yield running


def test_the_token_is_needed_and_refusals_are_openai_json(guarded: RunningApp) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        _client(guarded).models.list()
    assert caught.value.status_code == 401 and "Bearer" in caught.value.body["message"]
    with pytest.raises(openai.AuthenticationError):
        _client(guarded, "wrong-token-123456").chat.completions.create(model=LOADED, messages=HI)
    bare = httpx2.post(f"{guarded.url}v1/chat/completions", json={"messages": HI}, timeout=10)
    assert bare.status_code == 401 and bare.headers["content-type"] == "application/json"
    assert bare.headers["www-authenticate"] == "Bearer" and "<form" not in bare.text

    # With the token, beside the pages: the same answers, streamed through Taipy's server.
    client = _client(guarded, TOKEN)
    assert client.models.list().data[0].id == LOADED
    stream = client.chat.completions.create(model=LOADED, messages=HI, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY
    # The pages are still there, behind the same token.
    page = httpx2.get(guarded.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_cors_only_for_listed_origins(guarded: RunningApp) -> None:
    url = f"{guarded.url}v1/chat/completions"
    listed = "http://localhost:3000"
    preflight = httpx2.request(
        "OPTIONS",
        url,
        headers={
            "Origin": listed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
        timeout=10,
    )  # no token: a preflight never carries one
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == listed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-stainless-os" in preflight.headers["access-control-allow-headers"]

    auth = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx2.post(url, json={"messages": HI}, headers={**auth, "Origin": listed}, timeout=30)
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == listed
    assert answer.json()["choices"][0]["message"]["content"] == REPLY
    refused = httpx2.post(
        url, json={"messages": HI}, headers={**auth, "Origin": listed}, timeout=30
    )
    assert refused.status_code == 200  # (again: the same origin is still fine)

    for origin in ("http://evil.example", "null", "http://localhost:3001"):
        for method in ("OPTIONS", "POST", "GET"):
            response = httpx2.request(
                method, url, headers={**auth, "Origin": origin}, json={"messages": HI}, timeout=10
            )
            assert response.status_code == 403, (origin, method)
            assert response.json()["error"]["type"] == "permission_error"
            assert "access-control-allow-origin" not in response.headers
    # A listed origin without the token: 401, with the CORS header so its page can read why.
    no_token = httpx2.post(url, json={"messages": HI}, headers={"Origin": listed}, timeout=10)
    assert no_token.status_code == 401
    assert no_token.headers["access-control-allow-origin"] == listed


def test_a_second_localchat_chats_through_this_one(
    app: RunningApp, project_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[[backends]]\nname = "first"\nbase_url = "{app.url}v1"\n')
    env = {**project_env, "LOCALCHAT_DATA_DIR": str(tmp_path / "data")}
    base = ["--config", str(config)]
    listing = run_llm(*base, "backends", "--models", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)["backends"]}
    assert rows["first"]["models"] == [LOADED, "chatml-scripted.gguf"]

    asked = run_llm(*base, "ask", "--backend", "first", "What is the capital?", env=env)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == REPLY + "\n"
    chat_id = asked.stderr.split("saved in chat ")[1].split()[0]
    follow = run_llm(*base, "ask", "--backend", "first", "--chat", chat_id, "More?", env=env)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == REPLY + "\n"
    # The first LocalChat's server counted the tokens: its usage reached the second one.
    assert " 7 tokens" in follow.stderr

    # A second LocalChat serving the API itself offers the first one's models as BACKEND/MODEL
    # and answers through it.
    second_toml = config.read_text() + CONFIG
    with running_app(
        tmp_path / "second",
        tmp_path / "no-models",
        config_toml=second_toml,
        args=("--api", "--no-pages"),
    ) as second:
        client = _client(second)
        ids = [m.id for m in client.models.list().data]
        assert ids == [f"first/{LOADED}", "first/chatml-scripted.gguf"]
        answer = client.chat.completions.create(model=f"first/{LOADED}", messages=HI, stop=["."])
        assert answer.choices[0].message.content == REPLY[:-1]
        assert answer.model == f"first/{LOADED}"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="first/missing.gguf", messages=HI)
        assert "has no model 'missing.gguf'" in caught.value.body["message"]


def test_no_pages_needs_the_api(tmp_path: Path, project_env: dict[str, str]) -> None:
    done = run_main(["--no-pages", "--port", "1"], project_env, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --no-pages serves only the API: add --api (or [api] enabled = true)"
    )


def test_urllib_sees_server_sent_events_as_they_come(app: RunningApp) -> None:
    """Each token is its own event on the wire, written as it is generated."""
    request = urllib.request.Request(
        f"{app.url}v1/chat/completions",
        data=json.dumps({"messages": HI, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in response.read().split(b"\n\n") if line]
    assert events[-1] == b"data: [DONE]" and len(events) == 1 + 7 + 1 + 1


def test_requests_at_once_are_answered_in_arrival_order(app: RunningApp) -> None:
    """Fairness through the shared queue: five clients, each answered in the order it came."""
    order: list[int] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        _client(app).chat.completions.create(model=LOADED, messages=HI, max_tokens=7)
        with lock:
            order.append(i)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=ask, args=(i,)))
        threads[-1].start()
        time.sleep(0.15)  # so the arrival order is known
    for thread in threads:
        thread.join(timeout=60)
    assert order == [0, 1, 2, 3, 4]


def test_the_real_model_through_openai_and_langchain(real_model: Path, tmp_path: Path) -> None:
    """The starter model at temperature 0: a fact from the system prompt comes back through
    the API, the same from the openai client and from LangChain, streamed or not."""
    config = "[inference]\nn_ctx = 2048\nn_threads = 1\ntemperature = 0.0\nseed = 42\n"
    args = ("--api", "--no-pages", "--model", real_model.name)
    with running_app(tmp_path, real_model.parent, config_toml=config, args=args) as app:
        messages = [
            {"role": "system", "content": "The project codename is BLUEHERON."},
            {"role": "user", "content": "What is the project codename?"},
        ]
        client = _client(app)
        answer = client.chat.completions.create(
            model=real_model.name, messages=messages, max_tokens=48
        )
        text = answer.choices[0].message.content
        assert "BLUEHERON" in text
        streamed = client.chat.completions.create(
            model=real_model.name, messages=messages, max_tokens=48, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text
        chat = ChatOpenAI(
            model=real_model.name,
            base_url=f"{app.url}v1",
            api_key="x",
            max_tokens=48,
            temperature=0,
            seed=42,
        )
        assert chat.invoke([(m["role"], m["content"]) for m in messages]).content == text
        # Without the fact the model does not know it: the answer came from the system prompt.
        alone = client.chat.completions.create(
            model=real_model.name, messages=messages[1:], max_tokens=48
        )
        assert "BLUEHERON" not in alone.choices[0].message.content
