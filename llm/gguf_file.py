"""Reading GGUF file headers: what a model is, without loading its weights.

`read_gguf_header` parses the key/value metadata and tensor table with the `gguf`
package's constants and checks what llama.cpp would trip over, so a bad file gets a
precise reason ("truncated: 12 MB of 669 MB") instead of llama.cpp's bare failure.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import gguf

from .errors import ModelFileError

SUPPORTED_VERSIONS = (2, 3)
_SCALARS = {
    gguf.GGUFValueType.UINT8: "<B",
    gguf.GGUFValueType.INT8: "<b",
    gguf.GGUFValueType.UINT16: "<H",
    gguf.GGUFValueType.INT16: "<h",
    gguf.GGUFValueType.UINT32: "<I",
    gguf.GGUFValueType.INT32: "<i",
    gguf.GGUFValueType.FLOAT32: "<f",
    gguf.GGUFValueType.BOOL: "<?",
    gguf.GGUFValueType.UINT64: "<Q",
    gguf.GGUFValueType.INT64: "<q",
    gguf.GGUFValueType.FLOAT64: "<d",
}
# Arrays whose contents we keep; others are skipped without decoding.
_KEPT_ARRAYS = {"tokenizer.ggml.tokens"}
_MAX_COUNT = 1 << 32  # no real file has more keys, tensors or array items


@dataclass(frozen=True)
class ModelFile:
    """What the header of one GGUF file says, plus its size on disk."""

    path: str
    file_name: str
    size_bytes: int
    name: str
    architecture: str
    parameter_count: int
    file_type: str
    context_length: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    vocab_size: int
    chat_template: str | None
    bos_token: str
    eos_token: str

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """Bytes of an f16 KV cache for `n_ctx` tokens (K and V, every layer)."""
        head_dim = self.n_embd // max(self.n_head, 1)
        return 2 * 2 * self.n_layer * n_ctx * self.n_head_kv * head_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return asdict(self)


def human_size(n_bytes: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as file managers and the Hub show them)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n_bytes) < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


class _Truncated(Exception):
    pass


class _Reader:
    """Little-endian reads from a file that raise _Truncated at end of file."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) < n:
            raise _Truncated
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def count(self, what: str) -> int:
        value = self.unpack("<Q")
        if value > _MAX_COUNT:
            raise ModelFileError(f"corrupt GGUF header: {what} count {value} is impossible")
        return value

    def string(self) -> str:
        raw = self.read(self.count("string length"))
        return raw.decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        self.stream.seek(n, 1)

    def value(self, value_type: int, key: str) -> Any:
        if value_type == gguf.GGUFValueType.STRING:
            return self.string()
        if value_type == gguf.GGUFValueType.ARRAY:
            item_type = self.unpack("<I")
            n = self.count(f"{key} array")
            if key in _KEPT_ARRAYS or n <= 16:
                return [self.value(item_type, key) for _ in range(n)]
            if item_type == gguf.GGUFValueType.STRING:
                for _ in range(n):
                    self.skip(self.count("string length"))
            elif item_type in _SCALARS:
                self.skip(n * struct.calcsize(_SCALARS[item_type]))
            else:
                raise ModelFileError(f"corrupt GGUF header: {key} has items of type {item_type}")
            return None
        if value_type not in _SCALARS:
            raise ModelFileError(f"corrupt GGUF header: {key} has unknown value type {value_type}")
        return self.unpack(_SCALARS[value_type])


def _describe_start(head: bytes) -> str:
    text = head[:24].decode("utf-8", errors="replace").split("\n")[0].strip()
    if text and all(ch.isprintable() for ch in text):
        return f"starts with {text[:20]!r}"
    return "starts with bytes " + head[:8].hex(" ")


def _file_type_name(value: Any) -> str:
    try:
        name = gguf.LlamaFileType(int(value)).name
    except (ValueError, TypeError):
        return "unknown"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def read_gguf_header(path: str | Path) -> ModelFile:
    """Read and check a GGUF file's header; raise ModelFileError saying what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
        stream = path.open("rb")
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    with stream:
        if size == 0:
            raise ModelFileError(f"{path.name}: empty file (0 bytes)")
        head = stream.read(24)
        if head[:4] != b"GGUF":
            raise ModelFileError(f"{path.name}: not a GGUF file: {_describe_start(head)}")
        stream.seek(4)
        reader = _Reader(stream)
        try:
            return _parse(path, size, reader)
        except _Truncated:
            raise ModelFileError(
                f"{path.name}: truncated: the header ends early ({human_size(size)} on disk)"
            ) from None


def _parse(path: Path, size: int, reader: _Reader) -> ModelFile:
    version = reader.unpack("<I")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            f"{path.name}: unsupported GGUF version {version} (readable versions: 2 and 3)"
        )
    n_tensors = reader.count("tensor")
    n_kv = reader.count("key")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = reader.string()
        meta[key] = reader.value(reader.unpack("<I"), key)

    parameter_count = 0
    data_end = 0
    for _ in range(n_tensors):
        name = reader.string()
        n_dims = reader.unpack("<I")
        if n_dims > 8:
            raise ModelFileError(f"{path.name}: corrupt tensor table ({name} has {n_dims} dims)")
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= reader.unpack("<Q")
        tensor_type = reader.unpack("<I")
        offset = reader.unpack("<Q")
        try:
            block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(tensor_type)]
        except (ValueError, KeyError):
            raise ModelFileError(
                f"{path.name}: tensor {name} has unknown type {tensor_type}"
            ) from None
        parameter_count += n_elements
        data_end = max(data_end, offset + n_elements // block * type_size)

    alignment = int(meta.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT) or 32)
    position = reader.stream.tell()
    data_offset = position + (-position % alignment)
    expected = data_offset + data_end
    if size < expected:
        raise ModelFileError(
            f"{path.name}: truncated: {human_size(size)} of {human_size(expected)}"
        )

    tokens = meta.get("tokenizer.ggml.tokens") or []
    _check_vocabulary(path, tokens)
    arch = str(meta.get("general.architecture", "unknown"))

    def arch_int(key: str) -> int:
        value = meta.get(f"{arch}.{key}", 0)
        return int(value[0] if isinstance(value, list) and value else value or 0)

    def token_text(key: str) -> str:
        token_id = meta.get(key)
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            return tokens[token_id]
        return ""

    n_head = arch_int("attention.head_count")
    return ModelFile(
        path=str(path),
        file_name=path.name,
        size_bytes=size,
        name=str(meta.get("general.name") or path.stem),
        architecture=arch,
        parameter_count=parameter_count,
        file_type=_file_type_name(meta.get("general.file_type")),
        context_length=arch_int("context_length"),
        n_layer=arch_int("block_count"),
        n_embd=arch_int("embedding_length"),
        n_head=n_head,
        n_head_kv=arch_int("attention.head_count_kv") or n_head,
        vocab_size=len(tokens),
        chat_template=meta.get("tokenizer.chat_template") or None,
        bos_token=token_text("tokenizer.ggml.bos_token_id"),
        eos_token=token_text("tokenizer.ggml.eos_token_id"),
    )


def _check_vocabulary(path: Path, tokens: list[str]) -> None:
    if not tokens:
        raise ModelFileError(f"{path.name}: no tokenizer vocabulary (tokenizer.ggml.tokens)")
    seen: dict[str, int] = {}
    for token_id, token in enumerate(tokens):
        if token in seen:
            # llama.cpp aborts the whole process on this (GGML_ASSERT in the vocab loader).
            raise ModelFileError(
                f"{path.name}: corrupt vocabulary: token {token!r} appears twice "
                f"(ids {seen[token]} and {token_id})"
            )
        seen[token] = token_id
