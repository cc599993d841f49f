"""The llama.cpp driver: a token-level loop over llama-cpp-python behind LangChain's `LlamaCpp`
interface (`LocalLlamaCpp`), and the tokenization that keeps typed text plain. The one module
that touches LangChain's llama.cpp class and llama-cpp-python.

`LocalLlamaCpp` is LangChain's `LlamaCpp` with safe defaults and a streaming path that
(1) accepts a prompt already split into template text and message text, so text a user
typed never becomes control tokens, and (2) decodes tokens incrementally, so a stray
UTF-8 byte cannot hold back the rest of a reply.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

with warnings.catch_warnings():
    # langchain-community announces its sunset on import; this module is the only user.
    warnings.simplefilter("ignore")
    from langchain_community.llms import LlamaCpp

import llama_cpp
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.outputs import GenerationChunk
from pydantic import PrivateAttr

from .config import SamplingParams
from .load_settings import physical_cores
from .prompts import Segment


def make_llamacpp(
    model_path: str,
    *,
    n_ctx: int,
    n_threads: int = 0,
    n_batch: int = 512,
    sampling: SamplingParams | None = None,
    stop: Sequence[str] = (),
    **settings: Any,
) -> LocalLlamaCpp:
    """A LangChain LLM for a GGUF file with every LlamaCpp default that hurts set explicitly.

    `n_threads` 0: the physical cores for generation, and llama-cpp-python's own choice (every
    CPU) for prompt processing; a number chosen by the user is used for both.
    `sampling` fills the sampling fields LlamaCpp has (`min_p` goes per call, see
    `LocalLlamaCpp`); `settings` override any LlamaCpp field."""
    fixed = {
        "model_path": model_path,
        "n_ctx": n_ctx,
        "n_batch": n_batch,
        "n_threads": n_threads or physical_cores(),
        "n_gpu_layers": 0,
        # 0 keeps the RoPE values stored in the file (LlamaCpp would force 10000 / 1).
        "rope_freq_base": 0,
        "rope_freq_scale": 0,
        "verbose": False,
        "streaming": True,
        "stop": list(stop),
    }
    if n_threads:  # LlamaCpp has no field for it: llama.cpp's own keyword
        fixed["model_kwargs"] = {"n_threads_batch": n_threads}
    values = dataclasses.asdict(sampling or SamplingParams())
    own_sampling = {k: v for k, v in values.items() if k in LlamaCpp.model_fields}
    return LocalLlamaCpp(**{**fixed, **own_sampling, **settings})


class _Vocab:
    """Control tokens of a loaded model, for splitting template text the way llama.cpp does."""

    def __init__(self, llama: llama_cpp.Llama) -> None:
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self.bos = llama.token_bos()
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
        controls: dict[str, int] = {}
        eog: list[int] = []
        for token_id in range(llama.n_vocab()):
            if llama_cpp.llama_vocab_is_eog(vocab, token_id):
                eog.append(token_id)
            attr = llama_cpp.llama_vocab_get_attr(vocab, token_id)
            if attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
                text = llama_cpp.llama_vocab_get_text(vocab, token_id).decode("utf-8", "replace")
                if text:
                    controls[text] = token_id
        self.controls = controls
        self.eog = eog  # end-of-generation ids (</s>, <|eot_id|>, ...)
        self.control_ids = frozenset(controls.values()) | frozenset(eog)
        names = sorted(controls, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, names))) if names else None


def _vocab(llama: llama_cpp.Llama) -> _Vocab:
    cached = getattr(llama, "_localchat_vocab", None)
    if cached is None:
        cached = _Vocab(llama)
        llama._localchat_vocab = cached
    return cached


def context_threads(llama: llama_cpp.Llama) -> tuple[int, int]:
    """The threads llama.cpp's context really uses: (generation, prompt processing)."""
    return llama_cpp.llama_n_threads(llama.ctx), llama_cpp.llama_n_threads_batch(llama.ctx)


def tokenize_segments(llama: llama_cpp.Llama, segments: Sequence[Segment]) -> list[int]:
    """Token ids for a rendered prompt: control tokens only where the template put them.

    Template text is split at control-token strings; the text between them, template and
    message text together, is tokenized with `special=False` exactly as llama.cpp tokenizes
    the raw fragments of a whole prompt, so a prompt without injected markers gets the same
    ids as llama.cpp's own tokenizer would give it.
    """
    vocab = _vocab(llama)
    tokens: list[int] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            tokens.extend(llama.tokenize("".join(run).encode("utf-8"), False, False))
            run.clear()

    for segment in segments:
        if segment.is_content or vocab.pattern is None:
            run.append(segment.text)
            continue
        position = 0
        for match in vocab.pattern.finditer(segment.text):
            run.append(segment.text[position : match.start()])
            flush()
            tokens.append(vocab.controls[match.group(0)])
            position = match.end()
        run.append(segment.text[position:])
    flush()
    if vocab.add_bos and (not tokens or tokens[0] != vocab.bos):
        tokens.insert(0, vocab.bos)
    return tokens


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reuse_held_tokens(llama: llama_cpp.Llama, held: Sequence[int], tokens: list[int]) -> list[int]:
    """`tokens` with its start replaced by `held` (what llama.cpp's cache holds) as far as both
    spell the same bytes, ending at a token boundary of both.

    Why: a reply's tokens are often not the ones its text tokenizes to (a model may write
    "▁Par" "is" where the tokenizer says "▁Paris"), so the next prompt, tokenized from text,
    parts from the cache inside the last reply and llama.cpp evaluates the rest of that reply
    again. Keeping the model's own tokens gives the model the same text and evaluates only what
    is new. Control tokens must match exactly; anything else that differs ends the reuse.
    """
    start = common_prefix(held, tokens)
    if start == len(held) or start == len(tokens):
        return tokens
    controls = _vocab(llama).control_ids
    i = j = start
    best = (start, start)
    ahead_held = ahead_new = b""  # bytes each side has read past the last common boundary
    while True:
        if len(ahead_held) == len(ahead_new):
            if i > start:
                best = (i, j)
                ahead_held = ahead_new = b""
            if i == len(held) or j == len(tokens):
                break
            if held[i] in controls or tokens[j] in controls:
                if held[i] != tokens[j]:
                    break
                i, j = i + 1, j + 1  # a common boundary after the pair
                continue
        # The side that has read fewer bytes reads its next token (the held side on a tie).
        if len(ahead_held) <= len(ahead_new):
            if i == len(held) or held[i] in controls:
                break
            ahead_held += token_piece(llama, held[i])
            i += 1
        else:
            if j == len(tokens) or tokens[j] in controls:
                break
            ahead_new += token_piece(llama, tokens[j])
            j += 1
        shorter = min(len(ahead_held), len(ahead_new))
        if ahead_held[:shorter] != ahead_new[:shorter]:
            break
    reused, resume = best
    return [*held[:reused], *tokens[resume:]] if reused > start else tokens


def _held(llama: llama_cpp.Llama) -> tuple[list[int], list[int]]:
    """The tokens llama.cpp's cache holds, and the same followed by the last token of the
    reply before, when it was drawn but never evaluated (a reply cut by the limit or a Stop
    ends on one). Splicing with the second keeps the model's own last token in the next
    prompt, so a continued reply goes on from exactly what the model wrote."""
    held = llama._input_ids[: llama.n_tokens].tolist()
    at, pending = getattr(llama, "_localchat_pending", (-1, []))
    return held, held + pending if at == llama.n_tokens else held


def prefill(llama: llama_cpp.Llama, tokens: list[int]) -> int:
    """Evaluate `tokens` into llama.cpp's cache now (keeping what it holds of them), so that a
    later prompt that starts with them evaluates only the rest. Returns how many were evaluated."""
    held, known = _held(llama)
    tokens = reuse_held_tokens(llama, known, tokens)
    common = common_prefix(held, tokens)
    if common >= len(tokens) or len(tokens) >= llama.n_ctx():
        return 0
    llama.n_tokens = common  # eval() drops the cache from here on
    llama.eval(tokens[common:])
    return len(tokens) - common


def token_piece(llama: llama_cpp.Llama, token: int) -> bytes:
    """The bytes of one token (control tokens give b""); any length, unlike detokenize."""
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    size = 64
    while True:
        buf = (llama_cpp.ctypes.c_char * size)()
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
        if n >= 0:
            return bytes(buf[:n])
        size = -n


class _StopMatcher:
    """Holds back text that may be the start of a stop string; cuts at a complete one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to show now, and whether a stop string was reached."""
        self.pending += text
        cut = min((i for s in self.stop if (i := self.pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            out, self.pending = self.pending[:cut], ""
            return out, True
        hold = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class LocalLlamaCpp(LlamaCpp):
    """LlamaCpp whose streaming takes token ids and decodes incrementally.

    Extra keyword arguments of `stream` / `invoke`:
    `prompt_tokens` (list of ids; default: the prompt tokenized as llama.cpp would),
    `should_stop` (callable polled between tokens), and sampling overrides
    (`temperature`, `top_p`, `top_k`, `min_p`, `repeat_penalty`, `max_tokens`, `seed`,
    `presence_penalty`, `frequency_penalty`).
    After a reply, `last_info` holds its `finish_reason` and `figures`.
    """

    _last_info: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def last_info(self) -> dict[str, Any]:
        """`finish_reason` and `figures` of the last reply."""
        return self._last_info

    def close(self) -> None:
        """Free llama.cpp's model and context now (the object is unusable afterwards)."""
        self.client.close()

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return "".join(c.text for c in self._stream(prompt, stop, run_manager, **kwargs))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        llama: llama_cpp.Llama = self.client
        started = time.perf_counter()
        tokens: list[int] = kwargs.get("prompt_tokens") or llama.tokenize(
            prompt.encode("utf-8"), True, True
        )
        n_ctx = llama.n_ctx()
        max_tokens = min(int(kwargs.get("max_tokens") or self.max_tokens), n_ctx - len(tokens))
        if max_tokens <= 0:
            raise ValueError(f"prompt of {len(tokens)} tokens fills the context of {n_ctx}")
        _set_seed(llama, kwargs.get("seed", self.seed))
        tokens, cached = _reuse_cache(llama, tokens, max_tokens)
        run = _Run(
            matcher=_StopMatcher([*(self.stop or []), *(stop or [])]),
            should_stop=kwargs.get("should_stop") or (lambda: False),
            max_tokens=max_tokens,
        )
        generator = llama.generate(
            tokens,
            top_k=int(kwargs.get("top_k", self.top_k)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            min_p=float(kwargs.get("min_p", 0.05)),
            temp=float(kwargs.get("temperature", self.temperature)),
            repeat_penalty=float(kwargs.get("repeat_penalty", self.repeat_penalty)),
            presence_penalty=float(kwargs.get("presence_penalty", 0.0)),
            frequency_penalty=float(kwargs.get("frequency_penalty", 0.0)),
            reset=True,
            logits_processor=_no_end_of_generation(llama) if kwargs.get("ignore_eos") else None,
        )
        llama._localchat_pending = (-1, [])
        try:
            yield from _decode(llama, generator, run, run_manager)
        finally:
            generator.close()
            if run.last_token is not None:  # drawn, not evaluated: see `_held`
                llama._localchat_pending = (llama.n_tokens, [run.last_token])
        self._last_info = {
            "finish_reason": run.finish_reason,
            "figures": run.figures(started, len(tokens), cached),
        }
        yield GenerationChunk(text=run.tail(), generation_info=self._last_info)


def _set_seed(llama: llama_cpp.Llama, seed: int | None) -> None:
    if seed is not None and seed >= 0:
        llama.set_seed(int(seed))
    else:
        llama.set_seed(int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF)


def _reuse_cache(
    llama: llama_cpp.Llama, tokens: list[int], max_tokens: int
) -> tuple[list[int], int]:
    """The prompt to evaluate, with what llama.cpp's cache holds of it reused (when that still
    leaves room for the reply), and how many of its tokens the cache already holds."""
    # Tokens llama.cpp still holds from the previous call and will not re-evaluate.
    held, known = _held(llama)
    spliced = reuse_held_tokens(llama, known, tokens)
    if len(spliced) <= len(tokens) or llama.n_ctx() - len(spliced) >= max_tokens:
        tokens = spliced
    return tokens, common_prefix(held, tokens[:-1])


def _no_end_of_generation(llama: llama_cpp.Llama) -> llama_cpp.LogitsProcessorList:
    """Benchmarks: end-of-generation tokens are never drawn, so every reply is max_tokens."""
    eog = _vocab(llama).eog

    def no_eog(_ids: Any, logits: Any) -> Any:
        logits[eog] = float("-inf")
        return logits

    return llama_cpp.LogitsProcessorList([no_eog])


@dataclasses.dataclass
class _Run:
    """One reply being decoded: its stop strings, limits, and how it went."""

    matcher: _StopMatcher
    should_stop: Callable[[], bool]
    max_tokens: int
    decoder: Any = dataclasses.field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    n_generated: int = 0
    last_token: int | None = None  # the last one drawn that is part of the text
    first_at: float | None = None
    last_at: float | None = None
    finish_reason: str = "length"

    def tail(self) -> str:
        """Text held back at the end (none after a stop string or an end token)."""
        if self.finish_reason == "stop":
            return ""
        return self.matcher.flush() + self.decoder.decode(b"", True)

    def figures(self, started: float, n_prompt: int, cached: int) -> dict[str, Any]:
        prompt_time = (self.first_at or time.perf_counter()) - started
        first, last, n = self.first_at, self.last_at, self.n_generated
        decode_time = (last - first) if first and last else 0.0
        return {
            "prompt_tokens": n_prompt,
            "cached_tokens": cached,
            "completion_tokens": n,
            "time_to_first_token_s": round(prompt_time, 4),
            "prompt_tokens_per_second": round((n_prompt - cached) / prompt_time, 1)
            if prompt_time > 0
            else 0.0,
            "tokens_per_second": round((n - 1) / decode_time, 2)
            if decode_time > 0 and n > 1
            else 0.0,
        }


def _decode(
    llama: llama_cpp.Llama,
    generator: Iterator[int],
    run: _Run,
    run_manager: CallbackManagerForLLMRun | None,
) -> Iterator[GenerationChunk]:
    """Text chunks from generated tokens, until an end token, a stop string, Stop or the
    limit; `run` records how it went."""
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    for token in generator:
        now = time.perf_counter()
        run.first_at = run.first_at or now
        run.last_at = now
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            run.finish_reason = "stop"
            run.last_token = None  # the one before was evaluated to draw this one
            return
        run.n_generated += 1
        run.last_token = token
        out, stopped = run.matcher.feed(run.decoder.decode(token_piece(llama, token)))
        if out:
            chunk = GenerationChunk(text=out)
            if run_manager:
                run_manager.on_llm_new_token(out, chunk=chunk)
            yield chunk
        if stopped:
            run.finish_reason = "stop"
            return
        if run.should_stop():
            run.finish_reason = "cancelled"
            return
        if run.n_generated >= run.max_tokens:
            return
