"""One measured path in its own process: `python bench/runner.py raw|engine|seed SETTINGS_JSON`.

Each path holds its own model in its own process, so the bench can alternate between them turn
by turn and read each one's resident memory cleanly. Commands arrive as JSON lines on stdin,
answers leave as JSON lines on the original stdout (C libraries' prints are sent to stderr).

- raw:    llama-cpp-python alone: `Llama.create_completion(prompt, stream=True)` with the
          history kept as the text it returned. The floor.
- engine: `llm.Engine` + `ChatSession` (worker process, LangChain, prompt formats, history).
- seed:   the seed article's way: LangChain `LlamaCpp` with its defaults (n_batch=8, ...),
          `invoke()` on the whole conversation; the answer is shown when it is complete.

Times are wall-clock (`time.time()`), so they line up with the probe's and the browser's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.idle import wait_idle  # noqa: E402
from bench.workload import SYSTEM_PROMPT, PromptRenderer, Settings  # noqa: E402


def _common_prefix(held: list[int], tokens: list[int]) -> int:
    """Prompt tokens llama.cpp already holds and will not evaluate again."""
    n = 0
    for a, b in zip(held, tokens[:-1], strict=False):
        if a != b:
            break
        n += 1
    return n


def _decode_rate(times: list[float], tokens: int | None = None) -> float:
    """Tokens after the first / time from the first text to the last. `tokens` when there
    are fewer texts than tokens: a token that ends inside a UTF-8 character comes out with the
    next one (real models writing curly quotes, accents, Hangul)."""
    n = len(times) if tokens is None else tokens
    span = times[-1] - times[0] if times else 0.0
    return (n - 1) / span if span > 0 and n > 1 else 0.0


def _no_eog_bias(llama: Any) -> dict[int, float]:
    """A logit bias that rules out every end-of-generation token (</s>, <|eot_id|>, ...)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    eog = [t for t in range(llama.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    return dict.fromkeys(eog, float("-inf"))


def _memory() -> dict[str, int]:
    import psutil

    me = psutil.Process()
    rss = {"process": me.memory_info().rss}
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            rss["worker"] = rss.get("worker", 0) + child.memory_info().rss
    return rss


class RawPath:
    """llama-cpp-python's own streaming completion, nothing else."""

    def __init__(self, settings: Settings) -> None:
        import llama_cpp

        self.s = settings
        self.llama = llama_cpp.Llama(
            settings.model_path,
            n_ctx=settings.n_ctx,
            n_threads=settings.threads,
            n_batch=settings.n_batch,
            verbose=False,
        )
        self.no_eog = _no_eog_bias(self.llama)
        self.render = PromptRenderer(settings.model_path)
        self.messages: list[dict[str, str]] = []
        self.last_prompt = ""

    def new(self) -> None:
        self.messages = [{"role": "system", "content": SYSTEM_PROMPT}]

    def _held(self) -> list[int]:
        return self.llama._input_ids[: self.llama.n_tokens].tolist()

    def ask(self, text: str, seed: int) -> dict[str, Any]:
        self.messages.append({"role": "user", "content": text})
        prompt = self.render(self.messages)
        self.last_prompt = prompt
        tokens = self.llama.tokenize(prompt.encode("utf-8"), True, True)
        cached = _common_prefix(self._held(), tokens)
        times: list[float] = []
        reply = ""
        finish = ""
        started = time.time()
        for chunk in self.llama.create_completion(
            prompt,
            max_tokens=self.s.tokens,
            temperature=self.s.temperature,
            top_p=self.s.top_p,
            top_k=self.s.top_k,
            min_p=self.s.min_p,
            repeat_penalty=self.s.repeat_penalty,
            seed=seed,
            logit_bias=self.no_eog,
            stream=True,
        ):
            piece = chunk["choices"][0]["text"]
            finish = chunk["choices"][0]["finish_reason"] or finish
            if piece:
                times.append(time.time())
                reply += piece
        self.messages.append({"role": "assistant", "content": reply})
        generated = self.s.tokens if finish == "length" else len(times)  # tokens, not chunks
        return {
            "started": started,
            "token_times": times,
            "ttft_s": times[0] - started,
            "total_s": times[-1] - started,
            "tokens": generated,
            "prompt_tokens": len(tokens),
            "cached_tokens": cached,
            "decode_tps": _decode_rate(times, generated),
            "text": reply,
        }

    def cold(self) -> dict[str, Any]:
        """The last prompt again with llama.cpp's cache emptied: what re-evaluating costs."""
        tokens = self.llama.tokenize(self.last_prompt.encode("utf-8"), True, True)
        self.llama.reset()
        started = time.time()
        for _ in self.llama.create_completion(self.last_prompt, max_tokens=1, stream=True):
            break
        ttft = time.time() - started
        return {"ttft_s": ttft, "prompt_tokens": len(tokens), "prompt_tps": len(tokens) / ttft}


class EnginePath:
    """LocalChat's library, as the app uses it."""

    def __init__(self, settings: Settings) -> None:
        from llm.config import SamplingParams
        from llm.engine import Engine
        from llm.session import ChatSession

        self.s = settings
        self.engine = Engine(
            n_ctx=settings.n_ctx, n_threads=settings.threads, n_batch=settings.n_batch
        )
        self.engine.load(settings.model_path)
        self.params = SamplingParams(
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            min_p=settings.min_p,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=settings.tokens,
            ignore_eos=True,
        )
        self.session = ChatSession(
            self.engine, chat_format="auto", system_prompt=SYSTEM_PROMPT, params=self.params
        )

    def new(self) -> None:
        self.session.reset()

    def ask(self, text: str, seed: int) -> dict[str, Any]:
        times: list[float] = []
        started = time.time()
        reply = self.session.ask(text, seed=seed)
        for _chunk in reply:
            times.append(time.time())
        f = reply.figures
        return {
            "started": started,
            "token_times": times,
            "ttft_s": times[0] - started,
            "total_s": times[-1] - started,
            "tokens": f.completion_tokens,
            "chunks": len(times),
            "prompt_tokens": f.prompt_tokens,
            "cached_tokens": f.cached_tokens,
            "decode_tps": _decode_rate(times, f.completion_tokens),
            "worker_ttft_s": f.time_to_first_token_s,
            "worker_decode_tps": f.tokens_per_second,
            "finish_reason": reply.finish_reason,
            "worker_pid": self.engine.worker_pid,
            "text": reply.text,
            # The worker's work for the next turn is not the next path's (see bench/idle.py).
            "settle_s": wait_idle(self.engine.worker_pid),
        }


class SeedPath:
    """LangChain's LlamaCpp with its defaults, the whole answer at once."""

    def __init__(self, settings: Settings) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.llms import LlamaCpp
        from langchain_core.callbacks import BaseCallbackHandler

        self.s = settings
        # Defaults kept: n_batch=8, verbose=True, temperature 0.8, rope 10000/1, last_n 64.
        # Only what the comparison needs is set: the same threads and reply length, and
        # n_ctx, because the default 512 cannot hold the 10-turn conversation (see report).
        self.llm = LlamaCpp(
            model_path=settings.model_path,
            n_threads=settings.threads,
            max_tokens=settings.tokens,
            n_ctx=settings.n_ctx,
        )
        self.no_eog = _no_eog_bias(self.llm.client)
        self.render = PromptRenderer(settings.model_path)
        self.messages: list[dict[str, str]] = []

        times = self.token_times = []

        class Timer(BaseCallbackHandler):
            def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
                if token:
                    times.append(time.time())

        self.callbacks = [Timer()]

    def new(self) -> None:
        self.messages = [{"role": "system", "content": SYSTEM_PROMPT}]

    def ask(self, text: str, seed: int) -> dict[str, Any]:
        llama = self.llm.client
        self.messages.append({"role": "user", "content": text})
        prompt = self.render(self.messages)
        tokens = llama.tokenize(prompt.encode("utf-8"), True, True)
        cached = _common_prefix(llama._input_ids[: llama.n_tokens].tolist(), tokens)
        self.token_times.clear()
        started = time.time()
        reply = self.llm.invoke(
            prompt,
            config={"callbacks": self.callbacks},
            seed=seed,
            logit_bias=self.no_eog,
        )
        shown = time.time()  # the seed shows the answer when invoke() returns
        times = list(self.token_times)
        self.messages.append({"role": "assistant", "content": reply})
        return {
            "started": started,
            "token_times": times,
            "ttft_s": times[0] - started,
            "shown_s": shown - started,
            "total_s": shown - started,
            "tokens": len(times),
            "prompt_tokens": len(tokens),
            "cached_tokens": cached,
            "decode_tps": _decode_rate(times),
            "text": reply,
        }


PATHS = {"raw": RawPath, "engine": EnginePath, "seed": SeedPath}


def main() -> None:
    kind, settings = sys.argv[1], Settings(**json.loads(sys.argv[2]))
    # Answers go to the real stdout; anything C code prints to fd 1 goes to stderr instead.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)

    def answer(obj: dict[str, Any]) -> None:
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    started = time.time()
    path = PATHS[kind](settings)
    answer({"ready": True, "load_s": time.time() - started, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        try:
            if cmd == "exit":
                break
            if cmd == "new":
                path.new()
                answer({"ok": True})
            elif cmd == "ask":
                answer(path.ask(request["text"], request["seed"]))
            elif cmd == "cold":
                answer(path.cold())
            elif cmd == "memory":
                answer({"rss": _memory()})
            else:
                answer({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # reported to the driver, which stops the run
            answer({"error": f"{type(exc).__name__}: {exc}"})
    if kind == "engine":
        path.engine.close()


if __name__ == "__main__":
    main()
