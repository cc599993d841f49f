"""Tiny GGUF model files for tests, written with the `gguf` package and loadable by llama.cpp.

`write_scripted_model` builds a deterministic "scripted" llama model: every layer weight is zero,
so the residual stream is just the token embedding and the logits depend only on the last token.
Every token that is not part of the script embeds to dimension 0, script piece ``i`` embeds to its
own one-hot dimension ``i + 1``, and the output matrix points dimension 0 at ``script[0]``,
dimension ``i + 1`` at ``script[i + 1]`` and the last piece's dimension at ``</s>``. The winning
logit is 40 and every other logit is 0, so the model replies ``"".join(script)`` followed by EOS
at any temperature (checked at temperature 1.5 with top_k 40, top_p 0.95, repeat_penalty 1.1).

The vocabulary is SentencePiece style (``tokenizer.ggml.model = "llama"``): ``<unk>``, ``<s>``,
``</s>``, the chat-template control tokens of `SPECIAL_TOKENS` (ids 3..13), 256 byte tokens
``<0x00>``..``<0xFF>`` (ids 14..269), then NORMAL tokens: printable ASCII characters (space
written ``▁``), ``▁``, a few word pieces and the script pieces.

The other writers produce broken files: `write_empty`, `write_html`, `write_truncated`,
`write_wrong_version` and `write_random` make ``llama_cpp.Llama(...)`` raise ``ValueError``;
`write_repeated_vocab` makes llama.cpp abort the whole process (GGML_ASSERT), so only load it in
a subprocess.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import gguf
import numpy as np

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "WINNING_LOGIT",
    "script_token_ids",
    "write_embedding_model",
    "write_empty",
    "write_html",
    "write_random",
    "write_repeated_vocab",
    "write_scripted_model",
    "write_truncated",
    "write_wrong_version",
]

StrPath = str | os.PathLike[str]

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2

SPECIAL_TOKENS: list[str] = [
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|im_start|>",
    "<|im_end|>",
    "[INST]",
    "[/INST]",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
"""Control tokens present in every scripted model, at ids 3, 4, ... in this order."""

WINNING_LOGIT = 40.0
"""Logit of the scripted next token; all other logits are 0."""

SPM_SPACE = "\u2581"  # SentencePiece's "▁", which stands for a space in token texts

# Word pieces so that the vocabulary looks a little like a real one (the llama.cpp SPM tokenizer
# only reaches a piece through merges of pieces that exist, so prompts mostly use characters).
_WORD_PIECES = [
    "th", "in", "er", "on", "an", "re", "he", "ll", "llo", "Hello", "Hi",
    f"{SPM_SPACE}t", f"{SPM_SPACE}th", f"{SPM_SPACE}the", f"{SPM_SPACE}a", f"{SPM_SPACE}is",
    f"{SPM_SPACE}of", f"{SPM_SPACE}and", f"{SPM_SPACE}to", f"{SPM_SPACE}in", f"{SPM_SPACE}I",
    f"{SPM_SPACE}Hello", f"{SPM_SPACE}world", f"{SPM_SPACE}you",
]  # fmt: skip

# llama-cpp-python detokenizes token by token into a 32-byte buffer; a longer piece comes out
# empty (see shared notes), so scripts refuse pieces that long.
MAX_PIECE_BYTES = 32

_TT = gguf.TokenType


@dataclass
class _Vocab:
    tokens: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)

    def add(self, text: str, token_type: int, score: float = 0.0) -> int:
        """Append a token (no de-duplication) and return its id."""
        token_id = len(self.tokens)
        self.tokens.append(text)
        self.scores.append(score)
        self.types.append(int(token_type))
        self.ids.setdefault(text, token_id)
        return token_id

    def add_normal(self, text: str) -> int:
        """Return the id of `text`, appending it as a NORMAL token if it is new."""
        if text in self.ids:
            return self.ids[text]
        # SentencePiece-like scores: later pieces rank lower when the tokenizer merges.
        return self.add(text, _TT.NORMAL, score=-float(len(self.tokens)))


def _base_vocab() -> _Vocab:
    vocab = _Vocab()
    vocab.add("<unk>", _TT.UNKNOWN)
    vocab.add("<s>", _TT.CONTROL)
    vocab.add("</s>", _TT.CONTROL)
    for text in SPECIAL_TOKENS:
        vocab.add(text, _TT.CONTROL)
    for byte in range(256):
        vocab.add(f"<0x{byte:02X}>", _TT.BYTE)
    vocab.add_normal(SPM_SPACE)
    for code in range(0x21, 0x7F):
        vocab.add_normal(chr(code))
    for piece in _WORD_PIECES:
        vocab.add_normal(piece)
    return vocab


def _add_script(vocab: _Vocab, script: Sequence[str]) -> list[int]:
    """Give every script piece one token id (existing or new) and return the ids in order."""
    ids: list[int] = []
    seen: dict[int, str] = {}
    for piece in script:
        if not isinstance(piece, str) or not piece:
            raise ValueError(f"script pieces must be non-empty strings, got {piece!r}")
        text = piece.replace(" ", SPM_SPACE)
        if len(text.encode("utf-8")) > MAX_PIECE_BYTES:
            raise ValueError(
                f"script piece {piece!r} is longer than {MAX_PIECE_BYTES} bytes "
                "(llama-cpp-python would detokenize it as empty bytes)"
            )
        token_id = vocab.ids.get(text)
        if token_id is None:
            token_id = vocab.add_normal(text)
        if token_id in seen:
            raise ValueError(
                f"script pieces {seen[token_id]!r} and {piece!r} map to the same token "
                f"{vocab.tokens[token_id]!r} (id {token_id}); each piece needs its own token"
            )
        seen[token_id] = piece
        ids.append(token_id)
    return ids


def script_token_ids(script: Sequence[str]) -> list[int]:
    """Token ids `write_scripted_model` gives the pieces of `script`, in order."""
    return _add_script(_base_vocab(), script)


def _scripted_weights(
    n_vocab: int, script_ids: Sequence[int], n_embd: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token embedding and output matrix (numpy shape (n_vocab, n_embd), float32)."""
    if n_embd <= len(script_ids):
        raise ValueError(
            f"n_embd ({n_embd}) must be greater than the number of script pieces "
            f"({len(script_ids)}): each piece needs its own embedding dimension"
        )
    # Embedding entries of sqrt(n_embd) make the RMS of every embedding 1, so RMS norm leaves
    # them unchanged (up to eps) and the output weight below gives a logit of WINNING_LOGIT.
    scale = math.sqrt(n_embd)
    embd = np.zeros((n_vocab, n_embd), dtype=np.float32)
    embd[:, 0] = scale  # the shared "start" direction of every non-script token
    for i, token_id in enumerate(script_ids):
        embd[token_id, :] = 0.0
        embd[token_id, i + 1] = scale
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    targets = [*script_ids, EOS_ID]  # dimension d -> token targets[d]
    for dim, target in enumerate(targets):
        output[target, dim] = WINNING_LOGIT / scale
    return embd, output


def _write_llama_gguf(
    path: StrPath,
    vocab: _Vocab,
    embd: np.ndarray,
    output: np.ndarray,
    *,
    name: str,
    chat_template: str | None,
    n_layer: int,
    n_ff: int,
    n_ctx_train: int,
    dtype: str,
    pooling: gguf.PoolingType | None = None,
) -> None:
    n_vocab, n_embd = embd.shape
    n_head = 4
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by the head count ({n_head})")
    if n_layer < 1 or n_ff < 1 or n_ctx_train < 1:
        raise ValueError("n_layer, n_ff and n_ctx_train must be positive")
    if dtype == "f32":
        np_dtype, file_type = np.float32, gguf.LlamaFileType.ALL_F32
    elif dtype == "f16":
        np_dtype, file_type = np.float16, gguf.LlamaFileType.MOSTLY_F16
    else:
        raise ValueError(f"dtype must be 'f32' or 'f16', got {dtype!r}")

    writer = gguf.GGUFWriter(os.fspath(path), "llama")
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(n_vocab)
    if pooling is not None:
        writer.add_pooling_type(pooling)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    # gguf writes numpy shapes reversed relative to ggml's ne: numpy (rows, cols) is ne [cols, rows]
    # np.zeros is calloc-backed, so the large all-zero layer weights cost no time to build.
    ones = np.ones(n_embd, dtype=np.float32)  # norms stay f32
    square = np.zeros((n_embd, n_embd), dtype=np_dtype)  # q, k, v, o (n_head_kv == n_head)
    up = np.zeros((n_ff, n_embd), dtype=np_dtype)  # ffn_gate, ffn_up: ne [n_embd, n_ff]
    down = np.zeros((n_embd, n_ff), dtype=np_dtype)  # ffn_down: ne [n_ff, n_embd]
    writer.add_tensor("token_embd.weight", embd.astype(np_dtype))
    for layer in range(n_layer):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", ones)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + part + ".weight", square)
        writer.add_tensor(prefix + "ffn_norm.weight", ones)
        writer.add_tensor(prefix + "ffn_gate.weight", up)
        writer.add_tensor(prefix + "ffn_up.weight", up)
        writer.add_tensor(prefix + "ffn_down.weight", down)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output.astype(np_dtype))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_scripted_model(
    path: StrPath,
    script: list[str],
    *,
    name: str = "scripted-model",
    chat_template: str | None = None,
    n_embd: int = 64,
    n_layer: int = 1,
    n_ff: int = 128,
    n_ctx_train: int = 4096,
    dtype: str = "f32",
) -> None:
    """Write a llama model that answers any prompt with ``"".join(script)`` and then EOS.

    `script` lists the reply's pieces, with ordinary spaces (``["Paris", " is", " big", "."]``).
    Each piece becomes one token: an existing one (a single character, a word piece, a control
    token such as ``"<|im_end|>"`` or ``"</s>"``, a byte token such as ``"<0xF2>"``) or a new
    NORMAL token. Two pieces mapping to the same token raise ValueError, as do empty pieces and
    pieces over 32 UTF-8 bytes. Control pieces come out as no text; an end-of-generation one
    (``</s>``, ``<|im_end|>``, ``<|eot_id|>``) ends the reply there.

    `n_embd` must exceed ``len(script)`` and be divisible by 4 (the head count). `dtype` "f16"
    stores the 2-D weights as float16 (norms stay float32).
    """
    vocab = _base_vocab()
    script_ids = _add_script(vocab, script)
    if len(set(vocab.tokens)) != len(vocab.tokens):  # llama.cpp would abort the process
        raise AssertionError("scripted vocabulary has a repeated token")
    embd, output = _scripted_weights(len(vocab.tokens), script_ids, n_embd)
    _write_llama_gguf(
        path,
        vocab,
        embd,
        output,
        name=name,
        chat_template=chat_template,
        n_layer=n_layer,
        n_ff=n_ff,
        n_ctx_train=n_ctx_train,
        dtype=dtype,
    )


def write_embedding_model(
    path: StrPath, words: Sequence[str], *, n_embd: int = 64, seed: int = 0, pooling: bool = True
) -> None:
    """Write a llama model usable with `embedding=True` whose vectors are a bag of words.

    Every layer is zero, so a token's output is its own (random, seeded) embedding and the
    mean over a text's tokens depends only on which tokens it holds: texts sharing the
    `words` (each a token, with every prefix so the tokenizer can reach it) are close. It
    tells nothing about an embedding model's quality: only that the GGUF path works.
    `pooling` writes mean pooling into the file, as embedding models have; without it the
    file is like a chat model's, which names no pooling.
    """
    vocab = _base_vocab()
    for word in words:
        piece = SPM_SPACE + word
        for end in range(2, len(piece) + 1):
            vocab.add_normal(piece[:end])
    rng = np.random.default_rng(seed)
    embd = rng.standard_normal((len(vocab.tokens), n_embd)).astype(np.float32)
    output = np.zeros((len(vocab.tokens), n_embd), dtype=np.float32)
    _write_llama_gguf(
        path,
        vocab,
        embd,
        output,
        name="bag-of-words-embedder",
        chat_template=None,
        n_layer=1,
        n_ff=n_embd,
        n_ctx_train=2048,
        dtype="f32",
        pooling=gguf.PoolingType.MEAN if pooling else None,
    )


def write_repeated_vocab(path: StrPath) -> None:
    """Write a scripted-like model whose vocabulary lists the token "Hello" twice.

    The file is valid GGUF, but llama.cpp aborts the process (GGML_ASSERT) while loading it:
    only ever load it in a subprocess.
    """
    vocab = _base_vocab()
    script_ids = _add_script(vocab, ["Hello", " world", "!"])
    vocab.add("Hello", _TT.NORMAL, score=-float(len(vocab.tokens)))  # the repeat
    embd, output = _scripted_weights(len(vocab.tokens), script_ids, 64)
    _write_llama_gguf(
        path,
        vocab,
        embd,
        output,
        name="repeated-vocab",
        chat_template=None,
        n_layer=1,
        n_ff=128,
        n_ctx_train=4096,
        dtype="f32",
    )


def write_empty(path: StrPath) -> None:
    """Write an empty (0-byte) file."""
    with open(path, "wb"):
        pass


_HTML_PAGE = """<!DOCTYPE html>
<html class="">
<head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1.0, user-scalable=no" />
    <title>Hugging Face - Log In</title>
</head>
<body>
    <main>
        <h1>Log In</h1>
        <p>You need to be logged in to access this model. Please log in or sign up.</p>
        <form action="/login" method="POST">
            <input name="username" type="text" placeholder="Username or Email address" />
            <input name="password" type="password" placeholder="Password" />
            <button type="submit">Login</button>
        </form>
    </main>
</body>
</html>
"""


def write_html(path: StrPath) -> None:
    """Write an HTML login page, as a download that hit a Hub login wall would save."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(_HTML_PAGE)


def write_truncated(path: StrPath, source_path: StrPath, keep_fraction: float = 0.5) -> None:
    """Write the first `keep_fraction` of the valid model at `source_path` (a cut download)."""
    if not 0.0 <= keep_fraction < 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1), got {keep_fraction}")
    size = os.path.getsize(source_path)
    with open(source_path, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(int(size * keep_fraction)))


def write_wrong_version(path: StrPath, source_path: StrPath, version: int = 99) -> None:
    """Copy the model at `source_path` with its GGUF version (uint32 at bytes 4..8) patched."""
    shutil.copyfile(source_path, path)
    with open(path, "r+b") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{os.fspath(source_path)!r} is not a GGUF file")
        f.write(struct.pack("<I", version))


def write_random(path: StrPath, n_bytes: int = 4096, seed: int = 0) -> None:
    """Write `n_bytes` of seeded random bytes."""
    data = np.random.default_rng(seed).integers(0, 256, size=n_bytes, dtype=np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(data)
