"""The chat bar's model picker: its choices and what a chosen value means.

The choices are the models folder's files, then each `[[backends]]` server's models grouped
under the server's name, as last heard (`llm.backend_models`: asked with a deadline, cached).
A server that cannot be reached is one header saying so; the local models are always there.

Values: a local model is its file name (ending in `.gguf`, never holding a "/"); a server's
model is `backend/model` (a backend name has no "/"); a group header is `#group:NAME` and
is never a choice. `parse` takes a value from the page (a stranger's) and gives the model only
when it is one of the choices offered now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from llm.backend_models import BackendListing
from llm.config import LOCAL_BACKEND
from llm.model_files import model_paths

GROUP_PREFIX = "#group:"


@dataclass(frozen=True)
class Choice:
    """A model the picker offers: where it runs and its name there."""

    backend: str  # LOCAL_BACKEND or a [[backends]] name
    model: str  # a file name in the models folder, or the server's model id

    @property
    def value(self) -> str:
        return self.model if self.backend == LOCAL_BACKEND else f"{self.backend}/{self.model}"


def choices(
    models_dir: str | Path, listings: Iterable[BackendListing], t: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(value, label) of every entry, group headers included when servers are configured."""
    listings = list(listings)
    local = [(path.name, path.name) for path in model_paths(models_dir)]
    if not listings:
        return local
    entries = [(f"{GROUP_PREFIX}{LOCAL_BACKEND}", t["picker_this_computer"]), *local]
    for listing in listings:
        entries.append((f"{GROUP_PREFIX}{listing.backend}", header(listing, t)))
        entries.extend(
            (Choice(listing.backend, model).value, model)
            for model in (listing.models if listing.error is None else ())
        )
    return entries


def header(listing: BackendListing, t: Mapping[str, str]) -> str:
    """A server's group header: its name, and why it has no models when it has none."""
    name = listing.backend
    if listing.error is not None:
        code = listing.error.code
        if code in ("backend_unreachable", "backend_no_answer"):
            return t["picker_backend_down"].format(backend=name)
        if code == "backend_auth":
            return t["picker_backend_auth"].format(backend=name)
        return t["picker_backend_failed"].format(backend=name)
    if not listing.known:
        return t["picker_backend_asking"].format(backend=name)
    if not listing.models:
        return t["picker_backend_empty"].format(backend=name)
    return name


def down_line(listings: Iterable[BackendListing], t: Mapping[str, str]) -> str:
    """Under the picker: which servers cannot be reached ("" when all answered)."""
    down = [
        listing.backend
        for listing in listings
        if listing.error is not None
        and listing.error.code in ("backend_unreachable", "backend_no_answer")
    ]
    return t["picker_down_line"].format(backends=", ".join(down)) if down else ""


def parse(
    value: object, models_dir: str | Path, listings: Iterable[BackendListing]
) -> Choice | None:
    """The model `value` names if the picker offers it now, else None."""
    if not isinstance(value, str) or not value or value.startswith(GROUP_PREFIX):
        return None
    if "/" not in value:
        names = {path.name for path in model_paths(models_dir)}
        return Choice(LOCAL_BACKEND, value) if value in names else None
    backend, model = value.split("/", 1)
    for listing in listings:
        if listing.backend == backend and listing.error is None and model in listing.models:
            return Choice(backend, model)
    return None


def value_of(backend: str, model: str) -> str:
    """The picker's value for the model an engine uses ("" when none)."""
    return Choice(backend, model).value if model else ""
