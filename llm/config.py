"""Settings: the typed `Config` read once from config.toml and passed down.

No other module reads config.toml or LocalChat's environment variables.
Unknown keys and out-of-range values are refused with the key named.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .prompts import FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_DIR / "config.toml"
DEFAULT_SYSTEM_PROMPT = ""  # none of LocalChat's own: the user may choose one in the page
FORMAT_CHOICES = ("auto", *FORMATS)  # "auto": the model's own template, else a guess


def _setting(
    default: Any,
    low: float,
    high: float,
    text: str,
    *,
    step: float | None = None,
    above_low: bool = False,
    below_high: bool = False,
) -> Any:
    """A sampling field with its allowed range (`text` says it in words) and, for the fields
    the chat page shows, the step of its arrow keys."""
    limits = {"low": low, "high": high, "above_low": above_low, "below_high": below_high}
    return field(default=default, metadata={**limits, "range": text, "step": step})


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are drawn; one set per reply. Each field's range (and, for the chat page,
    its step) is in its metadata: config.toml, the pages, the library and the API all take
    the fields and their checks from here."""

    temperature: float = _setting(0.7, 0.0, 5.0, "0 to 5", step=0.05)
    top_p: float = _setting(0.95, 0.0, 1.0, "above 0, at most 1", step=0.05, above_low=True)
    top_k: int = _setting(40, 0, 10_000, "0 to 10000", step=1)
    min_p: float = _setting(0.05, 0.0, 1.0, "0 to below 1", step=0.01, below_high=True)
    repeat_penalty: float = _setting(1.1, 0.5, 5.0, "0.5 to 5", step=0.05)
    max_tokens: int = _setting(512, 1, 1_000_000, "1 to 1000000", step=64)
    # -1: a new random seed for every reply
    seed: int = _setting(-1, -1, 2**31, "-1 (random) or 0 to 2147483647", step=1, below_high=True)
    # Never draw an end-of-generation token, so a reply always runs to max_tokens (benchmarks).
    ignore_eos: bool = False

    def replace(self, **changes: Any) -> SamplingParams:
        """A copy with `changes` applied (None values ignored) and validated."""
        merged = {k: v for k, v in changes.items() if v is not None}
        params = dataclasses.replace(self, **merged)
        params.validate("sampling")
        return params

    def validate(self, section: str) -> None:
        """Raise ConfigError naming the first value outside its range."""
        for f in dataclasses.fields(self):
            if f.name not in SAMPLING_FIELDS:
                continue
            value, limits = getattr(self, f.name), f.metadata
            low_ok = value > limits["low"] if limits["above_low"] else value >= limits["low"]
            high_ok = value < limits["high"] if limits["below_high"] else value <= limits["high"]
            if not (low_ok and high_ok):
                raise ConfigError(
                    f"{section}.{f.name} = {value!r} is out of range ({limits['range']})",
                    code="out_of_range",
                    field=f.name,
                    value=value,
                    **_bounds(f.type, limits),
                )


def _bounds(kind: Any, limits: dict[str, Any]) -> dict[str, Any]:
    """A range as the words of an error need it: least and greatest value, and whether each
    end is itself excluded (an integer's excluded end becomes the next integer in)."""
    low, high = limits["low"], limits["high"]
    low_open, high_open = limits["above_low"], limits["below_high"]
    if kind in (int, "int"):
        low, low_open = (low + 1, False) if low_open else (low, False)
        high, high_open = (high - 1, False) if high_open else (high, False)
    return {"min": low, "max": high, "min_open": low_open, "max_open": high_open}


@dataclass(frozen=True)
class RequestSampling(SamplingParams):
    """Settings only a single request sets (the OpenAI-compatible API), never config.toml, the
    pages or a stored chat: OpenAI's penalties and the caller's own stop strings. The caller
    checks their ranges (llm/openai_api/schema.py)."""

    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()


# The fields a user sets (not the benchmarks' ignore_eos), in order.
SAMPLING_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(SamplingParams) if "range" in f.metadata
)


def sampling_field(name: str) -> dataclasses.Field:
    """The dataclass field of sampling setting `name` (its type, default and limits)."""
    return next(f for f in dataclasses.fields(SamplingParams) if f.name == name)


LOCAL_BACKEND = "local"  # llama.cpp in this machine's worker process: always there, the default
_BACKEND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def valid_backend_name(name: str) -> bool:
    """Whether `name` can name a backend ("local" included)."""
    return isinstance(name, str) and _BACKEND_NAME.fullmatch(name) is not None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?")
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[?[0-9A-Fa-f:.]{2,45}\]?")


@dataclass(frozen=True)
class Backend:
    """A remote server speaking the OpenAI API (llama-server, vLLM, Ollama's /v1, ...).

    The API key itself is never stored here (it would end up in logs and reprs): only the
    name of the environment variable holding it.
    """

    name: str
    base_url: str  # up to and including /v1, e.g. http://gpu-box:8080/v1
    api_key_env: str = ""  # "" : the server needs no key
    default_model: str = ""  # "" : the first model the server lists
    n_ctx: int = 0  # 0 : ask the server, else LocalChat's inference.n_ctx

    def api_key(self) -> str:
        """The key from the environment ("" when the backend needs none)."""
        if not self.api_key_env:
            return ""
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise ConfigError(
                f"backend {self.name!r} reads its API key from the environment variable "
                f"{self.api_key_env}, which is not set"
            )
        return key

    def validate(self, where: str) -> None:
        """Raise ConfigError naming the first bad value."""
        if not _BACKEND_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{where}.name = {self.name!r} must be 1 to 64 letters, digits, '.', '_' or '-'"
            )
        if self.name == LOCAL_BACKEND:
            raise ConfigError(f"{where}.name = 'local' is taken by the built-in llama.cpp backend")
        url = urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(
                f"{where}.base_url = {self.base_url!r} must be an http:// or https:// URL "
                f"such as http://127.0.0.1:8080/v1"
            )
        if self.api_key_env and not _ENV_NAME.fullmatch(self.api_key_env):
            raise ConfigError(
                f"{where}.api_key_env = {self.api_key_env!r} must be the NAME of an "
                f"environment variable (letters, digits, '_'), not the key itself"
            )
        if self.n_ctx != 0 and not 64 <= self.n_ctx <= 1_048_576:
            raise ConfigError(
                f"{where}.n_ctx = {self.n_ctx} is out of range (0 to ask the server, "
                f"or 64 to 1048576)"
            )


@dataclass(frozen=True)
class Config:
    """Everything configurable, with defaults that work on a laptop."""

    host: str = "127.0.0.1"
    port: int = 5000
    title: str = "LocalChat"
    language: str = "en"
    dark_mode: bool = True
    models_dir: Path = PROJECT_DIR / "models"
    # What LocalChat keeps: the chat database (localchat.db), preferences.
    data_dir: Path = PROJECT_DIR / "data"
    # Required by the web app on any address but loopback (LOCALCHAT_ACCESS_TOKEN wins).
    access_token: str = ""
    # Host names the app answers besides loopback, its own `host` and (listening on all
    # interfaces) this machine's addresses: e.g. a name a reverse proxy forwards.
    allowed_hosts: tuple[str, ...] = ()
    max_upload_mb: int = 64  # largest file a page may upload (a chat export to import)
    default_model: str = ""
    chat_format: str = "auto"
    n_ctx: int = 4096
    n_threads: int = 0  # 0: the number of physical cores
    n_batch: int = 512
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    sampling: SamplingParams = field(default_factory=SamplingParams)
    backends: tuple[Backend, ...] = ()  # remote servers; "local" (llama.cpp) is not listed
    # The OpenAI-compatible API under /v1 (docs/api.md): on with [api] enabled or --api;
    # web pages of these origins (scheme://host[:port]) may call it from a browser (CORS).
    api_enabled: bool = False
    api_cors_origins: tuple[str, ...] = ()
    # Folders under which a folder typed in a page may be indexed when the app can be reached
    # from other machines (docs/SECURITY.md); the command line may add any folder.
    documents_roots: tuple[Path, ...] = ()
    config_file: Path | None = None  # the config.toml read (None: defaults); never indexed

    def backend(self, name: str) -> Backend | None:
        """The remote backend called `name`; None for "local"; ConfigError if unknown."""
        if name == LOCAL_BACKEND:
            return None
        for backend in self.backends:
            if backend.name == name:
                return backend
        known = ", ".join([LOCAL_BACKEND, *(b.name for b in self.backends)])
        raise ConfigError(f"unknown backend {name!r} (configured: {known})")

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes` applied (None values ignored) and validated."""
        merged = {k: v for k, v in changes.items() if v is not None}
        for key in ("models_dir", "data_dir"):
            if key in merged:
                merged[key] = Path(merged[key]).expanduser().resolve()
        if "documents_roots" in merged:
            merged["documents_roots"] = tuple(
                Path(root).expanduser().resolve() for root in merged["documents_roots"]
            )
        config = dataclasses.replace(self, **merged)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise ConfigError for the first bad value."""
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"app.port = {self.port} is out of range (1 to 65535)")
        if self.access_token and len(self.access_token) < 12:
            raise ConfigError("app.access_token is too short: use at least 12 characters")
        if not 1 <= self.max_upload_mb <= 4096:
            raise ConfigError(
                f"app.max_upload_mb = {self.max_upload_mb} is out of range (1 to 4096)"
            )
        for name in self.allowed_hosts:
            if not _HOST_NAME.fullmatch(name):
                raise ConfigError(
                    f"app.allowed_hosts: {name!r} is not a host name or address "
                    '(no scheme, port or path: e.g. "chat.example.lan")'
                )
        if self.language not in ("en", "ko"):
            raise ConfigError(f"app.language = {self.language!r} must be 'en' or 'ko'")
        if self.chat_format not in FORMAT_CHOICES:
            choices = ", ".join(FORMAT_CHOICES)
            raise ConfigError(f"models.format = {self.chat_format!r} must be one of {choices}")
        if not 64 <= self.n_ctx <= 1_048_576:
            raise ConfigError(f"inference.n_ctx = {self.n_ctx} is out of range (64 to 1048576)")
        if not 0 <= self.n_threads <= 1024:
            raise ConfigError(f"inference.n_threads = {self.n_threads} is out of range (0 to 1024)")
        if not 1 <= self.n_batch <= 65536:
            raise ConfigError(f"inference.n_batch = {self.n_batch} is out of range (1 to 65536)")
        self.sampling.validate("inference")
        for origin in self.api_cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    f"api.cors_origins: {origin!r} is not an origin (scheme, host and port "
                    'only, e.g. "http://localhost:3000")'
                )
        seen: set[str] = set()
        for i, backend in enumerate(self.backends):
            backend.validate(f"backends[{i}]")
            if backend.name in seen:
                raise ConfigError(f"backends[{i}].name = {backend.name!r} is used twice")
            seen.add(backend.name)


_FIELD_TYPES = {f.name: str(f.type) for f in dataclasses.fields(SamplingParams)}
# config.toml layout: section -> key -> (Config field or "sampling.<field>", type)
_SCHEMA: dict[str, dict[str, tuple[str, type | tuple[type, ...]]]] = {
    "app": {
        "host": ("host", str),
        "port": ("port", int),
        "title": ("title", str),
        "language": ("language", str),
        "dark_mode": ("dark_mode", bool),
        "data_dir": ("data_dir", str),
        "access_token": ("access_token", str),
        "allowed_hosts": ("allowed_hosts", list),
        "max_upload_mb": ("max_upload_mb", int),
    },
    "api": {
        "enabled": ("api_enabled", bool),
        "cors_origins": ("api_cors_origins", list),
    },
    "models": {
        "dir": ("models_dir", str),
        "default": ("default_model", str),
        "format": ("chat_format", str),
    },
    "inference": {
        "n_ctx": ("n_ctx", int),
        "n_threads": ("n_threads", int),
        "n_batch": ("n_batch", int),
        "system_prompt": ("system_prompt", str),
        # A float setting also takes a whole number (temperature = 1).
        **{
            name: (f"sampling.{name}", int if _FIELD_TYPES[name] == "int" else (int, float))
            for name in SAMPLING_FIELDS
        },
    },
    "documents": {
        "roots": ("documents_roots", list),
    },
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings"}


def _check_type(where: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is a subclass of int in Python; a TOML `true` is not a number.
    is_bool_as_number = isinstance(value, bool) and expected is not bool
    # Lists in config.toml are lists of strings (host names).
    bad_list = isinstance(value, list) and not all(isinstance(v, str) for v in value)
    if is_bool_as_number or not isinstance(value, expected) or bad_list:
        name = "a number" if isinstance(expected, tuple) else _TYPE_NAMES[expected]
        raise ConfigError(f"{where} = {value!r} must be {name}")


# [[backends]] tables: key -> type (name and base_url are required)
_BACKEND_SCHEMA: dict[str, type] = {
    "name": str,
    "base_url": str,
    "api_key_env": str,
    "default_model": str,
    "n_ctx": int,
}


def _parse_backends(tables: Any) -> tuple[Backend, ...]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("backends must be written as [[backends]] tables")
    backends = []
    for i, table in enumerate(tables):
        where = f"backends[{i}]"
        for key, value in table.items():
            if key not in _BACKEND_SCHEMA:
                known = ", ".join(_BACKEND_SCHEMA)
                raise ConfigError(f"unknown key {where}.{key} in config (known: {known})")
            _check_type(f"{where}.{key}", value, _BACKEND_SCHEMA[key])
        for key in ("name", "base_url"):
            if not table.get(key):
                raise ConfigError(f"{where} needs a {key}")
        values = {**table, "base_url": table["base_url"].rstrip("/")}
        backends.append(Backend(**values))
    return tuple(backends)


def config_from_dict(data: dict[str, Any], *, base_dir: Path = PROJECT_DIR) -> Config:
    """Build a validated Config from parsed TOML; relative paths are taken from `base_dir`."""
    top: dict[str, Any] = {}
    sampling: dict[str, Any] = {}
    data = dict(data)
    if "backends" in data:
        top["backends"] = _parse_backends(data.pop("backends"))
    for section, values in data.items():
        if section not in _SCHEMA:
            known = ", ".join([*(f"[{s}]" for s in _SCHEMA), "[[backends]]"])
            raise ConfigError(f"unknown section [{section}] in config (known: {known})")
        if not isinstance(values, dict):
            raise ConfigError(f"{section} must be a [section] table")
        for key, value in values.items():
            if key not in _SCHEMA[section]:
                known = ", ".join(_SCHEMA[section])
                raise ConfigError(f"unknown key {section}.{key} in config (known: {known})")
            target, expected = _SCHEMA[section][key]
            _check_type(f"{section}.{key}", value, expected)
            if target.startswith("sampling."):
                sampling[target.removeprefix("sampling.")] = value
            else:
                top[target] = tuple(value) if isinstance(value, list) else value
    for key in ("models_dir", "data_dir"):
        if key in top:
            top[key] = (base_dir / Path(top[key]).expanduser()).resolve()
    if "documents_roots" in top:
        if not all(root.strip() for root in top["documents_roots"]):
            raise ConfigError('documents.roots: "" is not a folder (write the folder\'s path)')
        top["documents_roots"] = tuple(
            (base_dir / Path(root).expanduser()).resolve() for root in top["documents_roots"]
        )
    for key in sampling:
        if _FIELD_TYPES[key] == "float":
            sampling[key] = float(sampling[key])
    config = Config(**top, sampling=SamplingParams(**sampling))
    config.validate()
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Read config.toml (default: the project's own; missing file: all defaults).

    `LOCALCHAT_CONFIG` names another file; `LOCALCHAT_MODELS_DIR` overrides models.dir and
    `LOCALCHAT_DATA_DIR` overrides app.data_dir (a command-line flag, applied by the caller
    with `config.replace`, wins over both).
    """
    explicit = path is not None or "LOCALCHAT_CONFIG" in os.environ
    config_path = Path(path or os.environ.get("LOCALCHAT_CONFIG") or DEFAULT_CONFIG_PATH)
    if config_path.is_file():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
        config = config_from_dict(data, base_dir=config_path.resolve().parent)
        config = dataclasses.replace(config, config_file=config_path.resolve())
    elif explicit:
        raise ConfigError(f"config file not found: {config_path}")
    else:
        config = Config()
    if os.environ.get("LOCALCHAT_MODELS_DIR"):
        config = config.replace(models_dir=os.environ["LOCALCHAT_MODELS_DIR"])
    if os.environ.get("LOCALCHAT_DATA_DIR"):
        config = config.replace(data_dir=os.environ["LOCALCHAT_DATA_DIR"])
    if os.environ.get("LOCALCHAT_ACCESS_TOKEN"):
        config = config.replace(access_token=os.environ["LOCALCHAT_ACCESS_TOKEN"])
    return config
