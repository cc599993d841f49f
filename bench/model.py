"""The benchmark's model: random weights in TinyLlama-1.1B-Chat's exact shape, quantized to Q4_K_M.

Same tensor shapes, quantization and vocabulary size as `tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf`,
so it has the real file's size and cost per token; it is built once into `bench/cache/` (about a
minute) instead of being downloaded. The output is random words, which is all a timing needs.

Two choices keep every run comparable:
- The `<0xNN>` byte tokens are typed NORMAL (not BYTE): a random BYTE token can start a UTF-8
  sequence that never completes, and llama-cpp-python's streaming then holds back every later
  chunk (see the shared notes).
- Every multi-character piece is a whole word with SentencePiece's leading "▁", every prefix of
  a word is in the vocabulary, and the output rows of everything else (control tokens, byte
  tokens, single characters) are zero. With top-k sampling a zero logit never beats the ~40 best
  random ones, so the model only writes " word word word...", which tokenizes back to exactly
  the tokens it generated: a follow-up turn can reuse the cached prefix the way a real model's
  reply does, instead of a random byte sequence defeating the prefix cache.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "bench" / "cache"
ZEPHYR_TEMPLATE = (ROOT / "llm" / "templates" / "zephyr.jinja").read_text(encoding="utf-8")
SPM_SPACE = "\u2581"
N_VOCAB = 32000
# Bump when the file's content changes, so an old cached file is not reused.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelShape:
    """Hyper-parameters of a llama-architecture model."""

    name: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int = 2048

    @property
    def file_name(self) -> str:
        return f"{self.name}-random-v{FORMAT_VERSION}.Q4_K_M.gguf"


# TinyLlama-1.1B-Chat-v1.0 (config.json of TinyLlama/TinyLlama-1.1B-Chat-v1.0)
TINYLLAMA = ModelShape("tinyllama-1.1b-chat", 2048, 22, 32, 4, 5632)
# For smoke runs: the same vocabulary and format, a few MB, milliseconds per token.
QUICK = ModelShape("tinyllama-quick", 256, 2, 4, 2, 768)

# Words real prompts use, so the bench's questions tokenize into words (as in a real vocabulary)
# rather than letters. Everything else is filled with made-up words.
_COMMON_WORDS = " ".join(
    """a about across after again against all along also am an and any are around as ask at away
back be because been before being below belong belongs between big border borders both bridge
bridges but by can capital changed cities city climate close come conversation could country
countries day did discussed do does down each east expert far few find first flows food for
france from geography get give go good great has have he help her here high highest him his
history how i if in is island islands it its just know large largest last like live long look
made make many may me mountain mountains more most much my name near new next no north not now
of oldest on one only or other our out over people place reach reaches river rivers said same
sea seas see share she should so some source south state still such summarize sure tall take
tell than that the their them then there these they thing think this those three through time
to today too two under up us use very want was way we well were west what when where which
while who why will winter with would year years yes you your answering answers assist users
their questions question alps banks around along paris seine europe world water land north
"""
).split()

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


@dataclass
class Vocabulary:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    first_word_id: int  # ids below this are never generated (zero output rows)


def _made_up_words() -> Iterator[str]:
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    for n in (2, 3, 4):
        for parts in itertools.product(syllables, repeat=n):
            yield "".join(parts)


def build_vocabulary(size: int = N_VOCAB) -> Vocabulary:
    """A SentencePiece-style vocabulary of exactly `size` unique tokens (see module docstring)."""
    tt = gguf.TokenType
    tokens = ["<unk>", "<s>", "</s>"]
    types = [tt.UNKNOWN, tt.CONTROL, tt.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [tt.NORMAL] * 256
    tokens.append(SPM_SPACE)
    tokens += [chr(c) for c in range(0x21, 0x7F)]
    types += [tt.NORMAL] * (1 + 0x7F - 0x21)
    first_word_id = len(tokens)
    seen = set(tokens)

    def words() -> Iterator[str]:
        for word in _COMMON_WORDS:
            yield word
            yield word.capitalize()
        yield from _made_up_words()

    for word in words():
        # Every prefix is a token too, so the tokenizer's pairwise merges reach the whole word.
        for end in range(1, len(word) + 1):
            piece = SPM_SPACE + word[:end]
            if piece not in seen and len(tokens) < size:
                seen.add(piece)
                tokens.append(piece)
                types.append(tt.NORMAL)
        if len(tokens) >= size:
            break
    if len(tokens) != size:
        raise AssertionError(f"vocabulary has {len(tokens)} tokens, wanted {size}")
    scores = [-float(i) for i in range(size)]  # earlier pieces merge first
    return Vocabulary(tokens, scores, [int(t) for t in types], first_word_id)


def _write_f16(path: Path, shape: ModelShape, vocab: Vocabulary, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_vocab = len(vocab.tokens)
    head_dim = shape.n_embd // shape.n_head
    n_kv = shape.n_head_kv * head_dim

    def rand(rows: int, cols: int) -> np.ndarray:
        # Typical initialisation scale; the values do not matter for speed.
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    writer = gguf.GGUFWriter(os.fspath(path), "llama")
    writer.add_name(f"TinyLlama-1.1B-Chat shape, random weights ({shape.name})")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(ZEPHYR_TEMPLATE)  # as the real TinyLlama GGUF files carry it

    # One set of layer weights shared by every layer: the cost per token is the same, and the
    # writer then holds ~0.2 GB instead of the whole model in memory.
    ones = np.ones(shape.n_embd, dtype=np.float32)
    q, o = rand(shape.n_embd, shape.n_embd), rand(shape.n_embd, shape.n_embd)
    k, v = rand(n_kv, shape.n_embd), rand(n_kv, shape.n_embd)
    gate, up = rand(shape.n_ff, shape.n_embd), rand(shape.n_ff, shape.n_embd)
    down = rand(shape.n_embd, shape.n_ff)
    output = rand(n_vocab, shape.n_embd)
    output[: vocab.first_word_id] = 0  # never generated: see the module docstring
    writer.add_tensor("token_embd.weight", rand(n_vocab, shape.n_embd))
    for layer in range(shape.n_layer):
        p = f"blk.{layer}."
        writer.add_tensor(p + "attn_norm.weight", ones)
        writer.add_tensor(p + "attn_q.weight", q)
        writer.add_tensor(p + "attn_k.weight", k)
        writer.add_tensor(p + "attn_v.weight", v)
        writer.add_tensor(p + "attn_output.weight", o)
        writer.add_tensor(p + "ffn_norm.weight", ones)
        writer.add_tensor(p + "ffn_gate.weight", gate)
        writer.add_tensor(p + "ffn_up.weight", up)
        writer.add_tensor(p + "ffn_down.weight", down)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize(source: Path, target: Path, threads: int) -> None:
    """Quantize a GGUF file to Q4_K_M with llama.cpp (written to a temporary name, then renamed)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = threads
    partial = target.with_name(target.name + ".part")
    # llama.cpp logs a line per tensor on stderr; keep the bench's output readable.
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            status = llama_cpp.llama_model_quantize(
                os.fsencode(source), os.fsencode(partial), llama_cpp.byref(params)
            )
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if status != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize failed with status {status}")
    partial.replace(target)


def ensure_model(shape: ModelShape, cache_dir: Path = CACHE_DIR, threads: int = 2) -> Path:
    """The cached model file for `shape`, building it first if it is absent."""
    target = cache_dir / shape.file_name
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"building {target.name} (random weights, once)...", flush=True)
    # The f16 intermediate (2.2 GB for TinyLlama) goes next to the target, not to a RAM-backed /tmp.
    fd, name = tempfile.mkstemp(suffix=".f16.gguf", dir=cache_dir)
    os.close(fd)
    intermediate = Path(name)
    try:
        _write_f16(intermediate, shape, build_vocabulary())
        quantize(intermediate, target, threads)
    finally:
        intermediate.unlink(missing_ok=True)
    size = target.stat().st_size / 1e6
    print(
        f"built {target.name}: {size:.0f} MB in {time.perf_counter() - started:.0f} s", flush=True
    )
    return target
