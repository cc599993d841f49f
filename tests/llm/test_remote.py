"""Remote backends against a real OpenAI-compatible server: llama-cpp-python's own
(`python -m llama_cpp.server`) on 127.0.0.1, serving scripted models. Model list, streaming,
figures, trimming, Stop, unreachable server, bad key, unknown model, a server dying mid-reply,
[[backends]] in config.toml and `python -m llm ask --backend` end to end."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.browser import free_port
from support.commands import run_llm
from support.gguf_factory import write_scripted_model
from support.remote_server import Server, buffering_proxy, llama_cpp_server
from support.replies import REPLY, SCRIPT

from llm.config import Backend, SamplingParams, config_from_dict
from llm.errors import (
    BackendAuthError,
    BackendModelNotFoundError,
    BackendStreamError,
    BackendUnreachableError,
    ConfigError,
    PromptError,
)
from llm.remote import RemoteEngine
from llm.session import ChatSession

KEY = "test-key-5f1c"
KEY_ENV = "LOCALCHAT_TEST_BACKEND_KEY"
LONG_SCRIPT = [f" w{i}" for i in range(300)]
LONG_REPLY = "".join(LONG_SCRIPT)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The ChatML scripted model (replies REPLY), behind an API key, context 1024. By default
    this server ends a streaming reply early (a bare [DONE]) when another request arrives;
    --interrupt_requests false makes it queue them instead."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    model = models_dir / "chatml-scripted.gguf"
    with llama_cpp_server(
        model, "scripted", log, api_key=KEY, n_ctx=1024, interrupt_requests=False
    ) as running:
        yield running


@pytest.fixture(scope="module")
def long_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Replies 300 tokens at about 100 tokens/s: a reply lasts seconds, so Stop is visible."""
    path = tmp_path_factory.mktemp("long") / "long-scripted.gguf"
    write_scripted_model(path, LONG_SCRIPT, name="Long", n_embd=512, n_layer=8, n_ff=1024)
    return path


@pytest.fixture(scope="module")
def long_server(long_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("long-server") / "server.log"
    with llama_cpp_server(long_model, "long", log) as running:
        yield running


def backend(server: Server, **kwargs: object) -> Backend:
    settings = {"name": "test", "base_url": server.base_url, "api_key_env": KEY_ENV, **kwargs}
    return Backend(**settings)


@pytest.fixture
def engine(server: Server) -> Iterator[RemoteEngine]:
    engine = RemoteEngine(backend(server, n_ctx=1024))
    engine.load()
    yield engine
    engine.close()


def session(engine: RemoteEngine, max_tokens: int = 64, **kwargs: object) -> ChatSession:
    return ChatSession(engine, params=SamplingParams(max_tokens=max_tokens), **kwargs)


def test_model_list_and_choice(server: Server) -> None:
    engine = RemoteEngine(backend(server))
    models = engine.list_models()
    assert [m.id for m in models] == ["scripted"]
    assert models[0].backend == "test" and models[0].base_url == server.base_url
    loaded = engine.load()  # no default_model: the server's first
    assert loaded.info.id == "scripted" and loaded.format.name == "server"
    # llama-cpp-python's server does not report its context: inference.n_ctx's default is used
    assert loaded.n_ctx == 4096
    assert RemoteEngine(backend(server, n_ctx=512)).load("scripted").n_ctx == 512
    with pytest.raises(BackendModelNotFoundError) as error:
        engine.load("no-such-model")
    assert str(error.value) == (
        f"backend 'test' at {server.base_url} has no model 'no-such-model' (it offers: scripted)"
    )
    assert engine.loaded == loaded  # the failed choice changed nothing
    engine.close()
    assert [m.id for m in engine.list_models()] == ["scripted"]  # closing is not the end
    engine.close()


def test_chat_streams_the_scripted_reply_with_figures(engine: RemoteEngine) -> None:
    chat = session(engine, system_prompt="You are a geography expert")
    reply = chat.ask("What is the capital of France?", temperature=1.5)
    chunks = list(reply)
    assert chunks == SCRIPT  # one streamed chunk per token, exactly as the model wrote them
    assert reply.text == REPLY and reply.finish_reason == "stop"
    assert reply.format_name == "server"  # the server applied its own chat template
    figures = reply.figures
    # No usage in llama-cpp-python's stream: one token per chunk, prompt counted by its tokenizer
    assert figures.completion_tokens == len(SCRIPT)
    assert engine.counts_exactly and figures.prompt_tokens > 30
    assert figures.time_to_first_token_s > 0  # the rate: see the long-reply tests
    assert chat.history[-1] == {"role": "assistant", "content": REPLY}
    # The next turn sends the history; max_tokens reaches the server (as max_tokens, which
    # llama-cpp-python reads, not only as OpenAI's max_completion_tokens).
    short = chat.ask("And of Italy?", max_tokens=3)
    assert "".join(short) == "Paris is the" and short.finish_reason == "length"
    assert short.figures.prompt_tokens > figures.prompt_tokens
    assert len(chat.history) == 4


def test_parallel_requests_share_one_engine(engine: RemoteEngine) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append("".join(session(engine).ask("Hi")))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and results == [REPLY] * 3


def test_history_is_trimmed_to_the_server_context(server: Server) -> None:
    engine = RemoteEngine(backend(server, n_ctx=256))
    engine.load()
    chat = session(engine, max_tokens=16, system_prompt="System rules stay.")
    figures = []
    for i in range(6):
        reply = chat.ask(f"Question number {i} about France?")
        assert "".join(reply) == REPLY  # the server never saw more than its context
        figures.append(reply.figures)
    assert figures[0].dropped_turns == 0 and figures[-1].dropped_turns > 0
    assert all(f.prompt_tokens + 16 <= 256 for f in figures)
    history = list(chat.history)
    with pytest.raises(PromptError, match="too long"):
        list(chat.ask("x " * 300))
    with pytest.raises(PromptError, match=r"max_tokens 256 leaves no room .* context of 256"):
        list(chat.ask("Hi", max_tokens=256))  # as the local engine says it
    assert chat.history == history


def test_stop_ends_the_reply_at_once_and_the_server_stops(long_server: Server) -> None:
    engine = RemoteEngine(Backend(name="long", base_url=long_server.base_url))
    engine.load()
    chat = session(engine, max_tokens=400)
    cancel = threading.Event()
    reply = chat.ask("Go", cancel=cancel)
    stopped_at = 0.0
    for i, _ in enumerate(reply):
        if i == 5:
            cancel.set()
            stopped_at = time.perf_counter()
    assert time.perf_counter() - stopped_at < 0.5
    assert reply.finish_reason == "cancelled"
    assert reply.raw_text == "".join(LONG_SCRIPT[:6])  # shown without the leading space
    assert reply.text == reply.raw_text.lstrip()
    assert reply.figures.completion_tokens == 6
    assert chat.history[-1] == {"role": "assistant", "content": reply.raw_text}
    # The server stopped generating too: the next reply starts at once rather than after
    # the rest of the stopped one (about 3 s).
    chat.reset()
    started = time.perf_counter()
    again = iter(chat.ask("Go"))
    next(again)
    first_token_s = time.perf_counter() - started
    again.close()  # abandoning a reply also stops it
    full = chat.ask("Go")
    started = time.perf_counter()
    assert "".join(full) == LONG_REPLY.lstrip() and full.finish_reason == "stop"
    took_s = time.perf_counter() - started
    assert first_token_s < took_s / 2
    # The rate is timed from the first token to the last, so it is at least tokens / wall time
    # and not far above tokens / (wall time - this reply's own wait for its first token; on a
    # busy machine that wait is longer than the earlier reply's).
    rate = full.figures.tokens_per_second
    own_first_s = full.figures.time_to_first_token_s
    assert 299 / took_s <= rate < 299 / (took_s - own_first_s) * 1.5
    assert f"at {rate:.1f} tokens/s" in full.figures.line()


def test_a_reply_arriving_in_one_burst_has_no_rate(long_server: Server) -> None:
    # Behind a buffering proxy 300 tokens arrive at once: chunk times would give an absurd
    # rate (millions of tokens/s), so none is given.
    with buffering_proxy(long_server.base_url) as base_url:
        engine = RemoteEngine(Backend(name="proxied", base_url=base_url))
        engine.load()
        reply = session(engine, max_tokens=400).ask("Go")
        started = time.monotonic()  # the request goes out as the reply is read
        assert "".join(reply) == LONG_REPLY.lstrip() and reply.finish_reason == "stop"
        elapsed = time.monotonic() - started
    figures = reply.figures
    # The first token came with the last one: the wait is most of the reply's time (the rest
    # is counting the prompt's tokens first). A fixed "> 1 s" failed on a quiet machine, where
    # the 300 tokens took 0.97 s.
    assert figures.completion_tokens == 300
    assert figures.time_to_first_token_s > max(0.5, 0.5 * elapsed), (figures, elapsed)
    assert figures.tokens_per_second == 0.0
    assert "300 tokens" in figures.line() and "tokens/s" not in figures.line()


def test_unreachable_server_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = RemoteEngine(Backend(name="gone", base_url=url))
    with pytest.raises(BackendUnreachableError) as error:
        engine.list_models()
    assert str(error.value) == (
        f"cannot reach backend 'gone' at {url}: connection refused (is the server running?)"
    )
    nowhere = RemoteEngine(Backend(name="far", base_url="http://no-such-host.invalid:8080/v1"))
    with pytest.raises(BackendUnreachableError, match=r"host name 'no-such-host\.invalid' was not"):
        nowhere.load()


def test_wrong_or_missing_key_is_refused(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    with pytest.raises(BackendAuthError) as error:
        RemoteEngine(backend(server)).load()
    assert str(error.value) == (
        f"backend 'test' at {server.base_url} refused the API key from ${KEY_ENV} "
        f"(401: Invalid API key)"
    )
    with pytest.raises(BackendAuthError, match=r"wants an API key .*api_key_env"):
        RemoteEngine(backend(server, api_key_env="")).load()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ConfigError, match=f"environment variable {KEY_ENV}, which is not set"):
        RemoteEngine(backend(server)).load()


def test_wrong_key_while_chatting_keeps_history_unchanged(
    engine: RemoteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = session(engine)
    engine.count_tokens([{"role": "user", "content": "Hi"}])  # counted while the key was right
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    reply = chat.ask("Hi")
    with pytest.raises(BackendAuthError, match="401"):
        list(reply)
    assert reply.finish_reason == "failed" and chat.history == []


def test_server_dying_mid_reply_keeps_the_partial_text(long_model: Path, tmp_path: Path) -> None:
    with llama_cpp_server(long_model, "long", tmp_path / "server.log") as dying:
        engine = RemoteEngine(Backend(name="dying", base_url=dying.base_url))
        engine.load()
        chat = session(engine, max_tokens=400)
        reply = chat.ask("Go")
        with pytest.raises(BackendStreamError) as error:
            for i, _ in enumerate(reply):
                if i == 20:
                    dying.process.kill()
                    dying.process.wait()
        assert reply.finish_reason == "failed"
        raw = reply.raw_text
        assert raw.startswith("".join(LONG_SCRIPT[:21])) and raw != LONG_REPLY
        assert error.value.partial_text == raw
        assert str(error.value) == (
            f"backend 'dying' at {dying.base_url} broke off the reply after "
            f"{len(raw)} characters: the connection was closed"
        )
        assert chat.history[-1] == {"role": "assistant", "content": reply.raw_text}
        with pytest.raises(BackendUnreachableError, match="connection refused"):
            list(chat.ask("Still there?"))


def test_backends_in_config() -> None:
    config = config_from_dict(
        {
            "backends": [
                {"name": "gpu", "base_url": "http://gpu:8080/v1/", "api_key_env": "GPU_KEY"},
                {"name": "ollama", "base_url": "http://127.0.0.1:11434/v1", "n_ctx": 8192},
            ]
        }
    )
    assert [b.name for b in config.backends] == ["gpu", "ollama"]
    gpu = config.backend("gpu")
    assert gpu is not None and gpu.base_url == "http://gpu:8080/v1"
    assert config.backend("local") is None
    with pytest.raises(ConfigError, match=r"unknown backend 'nope' \(configured: local, gpu, "):
        config.backend("nope")


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"name": "x"}, "backends[0] needs a base_url"),
        ({"base_url": "http://h/v1"}, "backends[0] needs a name"),
        ({"name": "x", "base_url": "h:8080/v1"}, "must be an http:// or https:// URL"),
        ({"name": "local", "base_url": "http://h/v1"}, "'local' is taken"),
        ({"name": "a b", "base_url": "http://h/v1"}, "must be 1 to 64 letters"),
        ({"name": "x", "base_url": "http://h/v1", "key": "k"}, "unknown key backends[0].key"),
        ({"name": "x", "base_url": "http://h/v1", "api_key_env": "sk-123"}, "NAME of an"),
        ({"name": "x", "base_url": "http://h/v1", "n_ctx": 10}, "n_ctx = 10 is out of range"),
        ({"name": "x", "base_url": 8080}, "base_url = 8080 must be a string"),
    ],
)
def test_bad_backend_entries_are_refused(tables: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict({"backends": [tables]})
    assert message in str(error.value)


def test_duplicate_backend_names_and_wrong_shape_are_refused() -> None:
    twice = [{"name": "x", "base_url": "http://a/v1"}, {"name": "x", "base_url": "http://b/v1"}]
    with pytest.raises(ConfigError, match=r"backends\[1\]\.name = 'x' is used twice"):
        config_from_dict({"backends": twice})
    with pytest.raises(ConfigError, match=r"\[\[backends\]\] tables"):
        config_from_dict({"backends": {"name": "x"}})


def test_cli_ask_and_backends_through_the_server(
    server: Server, project_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[[backends]]\n"
        f'name = "test"\nbase_url = "{server.base_url}"\napi_key_env = "{KEY_ENV}"\n'
        'default_model = "scripted"\nn_ctx = 1024\n'
        "[[backends]]\n"
        f'name = "gone"\nbase_url = "http://127.0.0.1:{free_port()}/v1"\n'
    )
    env = {**project_env, KEY_ENV: KEY, "LOCALCHAT_DATA_DIR": str(tmp_path / "data")}
    base = ["--config", str(config)]
    result = run_llm(*base, "ask", "--backend", "test", "What is the capital?", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == REPLY + "\n"
    # 7 tokens may come too fast to time (see the burst test): a rate only when measured
    figures_line = result.stderr.strip().splitlines()[-1]
    assert re.search(
        rf"first token \d+\.\d\d s · {len(SCRIPT)} tokens( at \d+\.\d tokens/s)?$", figures_line
    )
    chat_id = result.stderr.split("saved in chat ")[1].split()[0]
    follow = run_llm(*base, "ask", "--backend", "test", "--chat", chat_id, "More?", env=env)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == REPLY + "\n" and f"saved in chat {chat_id}" in follow.stderr

    listing = run_llm(*base, "backends", "--models", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)["backends"]}
    assert list(rows) == ["local", "test", "gone"]
    assert rows["test"]["models"] == ["scripted"] and rows["test"]["key"].startswith("key from")
    assert "connection refused" in rows["gone"]["error"]

    unknown = run_llm(*base, "ask", "--backend", "nope", "hi", env=env)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert unknown.stderr.strip() == (
        "error: unknown backend 'nope' (configured: local, test, gone)"
    )
    wrong = run_llm(*base, "ask", "--backend", "test", "hi", env={**env, KEY_ENV: "bad"})
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "refused the API key" in wrong.stderr
