"""Names on the Hub: repository ids and model file names checked before any request, and what a
GGUF file name says (its quantization, the part it is of a split model)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import HubError, UnsafeFileNameError

_QUANT_RE = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)|Q[2-8]_K(?:_XL|_[SML])?|Q[4-8]_[01]|TQ[12]_0|MXFP4|BF16|FP?16|F32"
    r"|Q[2-8]"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Unicode's explicit direction marks, embeddings, overrides and isolates.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def parse_quantization(file_name: str) -> str:
    """The quantization named in a GGUF file name ("Q4_K_M", "IQ2_XS", "F16"), or ""."""
    stem = Path(file_name).name
    match = _QUANT_RE.search(stem.removesuffix(".gguf").removesuffix(".GGUF"))
    if not match:
        return ""
    quant = match.group(1).upper()
    return "F16" if quant == "FP16" else quant


def split_part(file_name: str) -> tuple[str, int, int] | None:
    """`model-Q8_0-00002-of-00003.gguf` -> ("model-Q8_0", 2, 3); None for a single file."""
    match = _SPLIT_RE.match(file_name)
    if not match:
        return None
    return match["stem"], int(match["index"]), int(match["count"])


def check_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it has the form owner/name; else raise HubError saying so."""
    if not isinstance(repo_id, str) or not _REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise HubError(f"not a Hugging Face repository id: {repo_id!r} (expected owner/name)")
    return repo_id


def safe_local_name(file_name: str) -> str:
    """The name a repository file gets in the models folder (its last path part).

    Refused: absolute paths, `..` or empty parts, backslashes, control characters, hidden
    names, and anything that is not a `.gguf` file.
    """
    refusal = f"refusing to download {file_name!r}"
    if not isinstance(file_name, str) or not file_name.strip():
        raise UnsafeFileNameError("no file name given")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in file_name) or "\\" in file_name:
        raise UnsafeFileNameError(f"{refusal}: the name contains a control character or '\\'")
    if any(ch in _BIDI_CONTROLS for ch in file_name):
        # U+202E and friends reorder the text around them: "x\u202egguf.exe" shows as
        # "xexe.fugg", so a name could show as something it is not.
        raise UnsafeFileNameError(
            f"{refusal}: the name contains a Unicode direction control, which can make it "
            "display as something else"
        )
    if file_name.startswith("/") or re.match(r"^[A-Za-z]:", file_name):
        raise UnsafeFileNameError(f"{refusal}: absolute paths would escape the models folder")
    parts = file_name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeFileNameError(
            f"{refusal}: '.', '..' or empty path parts could escape the models folder"
        )
    name = parts[-1]
    if name.startswith("."):
        raise UnsafeFileNameError(f"{refusal}: hidden file names are not allowed")
    if not name.endswith(".gguf"):
        raise UnsafeFileNameError(f"{refusal}: only .gguf model files can be downloaded")
    if len(name.encode("utf-8")) > 240:
        raise UnsafeFileNameError(f"{refusal}: the file name is too long")
    return name
