"""Indexing (llm/documents/indexer.py, index_process.py): incremental, resumable, consistent
after kill -9, pausing while the engine is busy, cancellable, and a file that hangs its reader
is killed, listed with the reason, and the rest indexed. Real SQLite, real helper processes,
the real WordLlama embedder."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from support.documents_factory import FACTS, write_binary, write_fact_files, write_text
from support.gguf_factory import write_embedding_model

from llm.child_process import start_child
from llm.config import Config
from llm.documents import DocumentsError, Library
from llm.documents.embedders import WordLlamaEmbedder
from llm.documents.errors import PathRefusedError
from llm.documents.index_process import IndexingService, run_indexing
from llm.documents.indexer import Indexer


@pytest.fixture(scope="module")
def wordllama() -> WordLlamaEmbedder:
    return WordLlamaEmbedder()


@pytest.fixture
def library(tmp_path: Path) -> Library:
    config = Config(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    config.models_dir.mkdir()
    with Library(config) as library:
        yield library


def run_here(library: Library, name: str, embedder: object) -> list[str]:
    """Index in this process; returns the files that were read."""
    read: list[str] = []
    Indexer(library.store, name, embedder, on_file=lambda p: p and read.append(Path(p).name)).run()
    return read


def chunk_ids(library: Library, file_name: str) -> list[int]:
    rows = library.store._read(
        lambda db: db.execute(
            "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path LIKE ?",
            (f"%/{file_name}",),
        ).fetchall()
    )
    return [row[0] for row in rows]


def test_only_changed_files_are_read_again(
    library: Library, wordllama: WordLlamaEmbedder, tmp_path: Path
) -> None:
    folder = write_fact_files(tmp_path / "docs", korean=False)
    write_binary(folder / "broken.txt")
    library.create("facts", [folder])
    assert sorted(run_here(library, "facts", wordllama)) == sorted([*FACTS, "broken.txt"])
    failed = [r for r in library.files("facts") if r.status == "failed"]
    assert [(Path(r.path).name, r.error) for r in failed] == [
        ("broken.txt", "is not text (it holds binary data)")
    ]
    assert run_here(library, "facts", wordllama) == []  # nothing changed: nothing opened

    river = folder / "river.txt"
    before = chunk_ids(library, "river.txt")
    os.utime(river, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # touched only
    assert run_here(library, "facts", wordllama) == []
    assert chunk_ids(library, "river.txt") == before

    write_text(river, "The Velvo river is 999 kilometres long now.")
    write_text(folder / "new.md", "# New\nA new file about owls.")
    (folder / "pets.md").unlink()
    assert sorted(run_here(library, "facts", wordllama)) == ["new.md", "river.txt"]
    names = {Path(r.path).name for r in library.files("facts")}
    assert "pets.md" not in names and "new.md" in names
    assert chunk_ids(library, "pets.md") == []  # its passages left the index
    top = library.search(["facts"], "How long is the Velvo river?", k=1)[0]
    assert "999" in top.text
    assert not library.search(["facts"], "Biscuit Thunderpaw", mode="keyword")


def test_changing_the_embedder_makes_every_vector_again(
    library: Library, wordllama: WordLlamaEmbedder, tmp_path: Path
) -> None:
    words = ["Zorblat", "festival", "Quenville", "Velvo", "river", "cat", "Biscuit"]
    write_embedding_model(library.config.models_dir / "bow-embed.gguf", words, n_embd=512)
    folder = write_fact_files(tmp_path / "docs", korean=False)
    library.create("facts", [folder])
    run_here(library, "facts", wordllama)
    assert library.store.collection("facts").dimensions == 256
    library.set_embedder("facts", "gguf:bow-embed.gguf")
    assert library.search(["facts"], "Zorblat", mode="vector") == []  # vectors dropped
    assert library.search(["facts"], "Zorblat", mode="keyword")  # keywords still work
    read = run_here(library, "facts", library.embedder("gguf:bow-embed.gguf"))
    assert read == []  # the stored passages were embedded again; no file was opened
    collection = library.store.collection("facts")
    assert (collection.embedder, collection.dimensions) == ("gguf:bow-embed.gguf", 512)
    top = library.search(["facts"], "Velvo river", mode="vector", k=1)[0]
    assert top.file_name == "river.txt"


def big_folder(folder: Path, files: int = 40) -> Path:
    folder.mkdir()
    for i in range(files):
        text = "\n\n".join(
            f"File {i} paragraph {j}: " + "lorem ipsum dolor " * 40 for j in range(30)
        )
        write_text(folder / f"doc{i:03}.txt", text)
    return folder


def consistent(db_path: Path) -> None:
    """The database is sound and no file is listed as indexed without all its passages."""
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    mismatched = db.execute(
        "SELECT f.path FROM files f WHERE f.status = 'indexed' AND f.chunk_count != "
        "(SELECT count(*) FROM chunks c WHERE c.file_id = f.id)"
    ).fetchall()
    assert mismatched == []
    chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert db.execute("SELECT count(*) FROM chunk_terms").fetchone()[0] == chunks
    assert db.execute("SELECT count(*) FROM chunks WHERE vector IS NULL").fetchone()[0] == 0
    db.close()


def test_kill_9_leaves_a_consistent_index_and_the_next_run_resumes(
    library: Library, tmp_path: Path
) -> None:
    library.create("big", [big_folder(tmp_path / "big")])
    process, conn = start_child("llm.documents.index_helper")
    conn.send(
        {
            "db": str(library.store.path),
            "name": "big",
            "embedder": "wordllama",
            "config": library.config,
        }
    )
    deadline = time.monotonic() + 60
    while library.progress("big").files_done < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    conn.close()
    progress = library.progress("big")
    assert progress.state == "interrupted"
    assert 5 <= progress.files_done < 40
    consistent(library.store.path)
    done_before = {
        r.path: chunk_ids(library, Path(r.path).name)
        for r in library.files("big")
        if r.status == "indexed"
    }
    service = IndexingService(library)  # as the app does when it starts again
    assert service.resume_interrupted() == ["big"]
    service.wait("big", timeout=120)
    assert service.results == {"big": "done"}
    consistent(library.store.path)
    assert library.progress("big").files_done == 40  # counted on from where it stopped
    for path, ids in done_before.items():
        assert chunk_ids(library, Path(path).name) == ids  # not read again
    assert library.collection("big").files_indexed == 40


def test_a_run_the_app_s_stop_cuts_resumes_at_the_next_start_and_a_cancelled_one_does_not(
    library: Library, tmp_path: Path
) -> None:
    library.create("cut", [big_folder(tmp_path / "cut", files=40)])
    library.create("stopped", [big_folder(tmp_path / "stopped", files=40)])
    service = IndexingService(library)
    for name in ("cut", "stopped"):
        service.start(name)
    deadline = time.monotonic() + 60
    while (
        min(library.progress(n).files_done for n in ("cut", "stopped")) < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    service.cancel("stopped")  # the user's Cancel
    service.close()  # the app stops
    assert library.progress("cut").state == "interrupted"
    assert library.progress("stopped").state == "cancelled"
    done = library.collection("cut").files_indexed
    assert 2 <= done < 40
    again = IndexingService(library)  # the app starts again
    assert again.resume_interrupted() == ["cut"]
    again.wait("cut", timeout=120)
    assert again.results == {"cut": "done"}
    assert library.collection("cut").files_indexed == 40
    assert library.progress("stopped").state == "cancelled"


def test_pauses_while_busy_and_cancel_keeps_what_is_stored(
    library: Library, tmp_path: Path
) -> None:
    library.create("big", [big_folder(tmp_path / "big", files=20)])
    busy = threading.Event()
    busy.set()
    cancel = threading.Event()
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(library.index("big", is_busy=busy.is_set, cancel=cancel))
    )
    thread.start()
    time.sleep(2.0)
    assert library.progress("big").files_done == 0  # paused from the start
    busy.clear()
    deadline = time.monotonic() + 60
    while library.progress("big").files_done < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    cancel.set()
    thread.join(60)
    assert result == ["cancelled"]
    stored = library.collection("big").files_indexed
    assert 3 <= stored < 20
    consistent(library.store.path)
    assert library.index("big") == "done"
    assert library.collection("big").files_indexed == 20


def test_a_file_that_hangs_its_reader_is_skipped_with_the_reason(
    library: Library, tmp_path: Path
) -> None:
    folder = write_fact_files(tmp_path / "docs", korean=False)
    os.mkfifo(folder / "hangs.txt")  # reading it blocks forever, in C: only a kill ends it
    library.create("facts", [folder])
    state = run_indexing(
        library.store.path, "facts", "wordllama", library.config, file_time_limit_s=2
    )
    assert state == "done"
    files = {Path(r.path).name: r for r in library.files("facts")}
    assert files["hangs.txt"].status == "failed"
    assert "longer than 2 s" in files["hangs.txt"].error
    assert all(files[name].status == "indexed" for name in FACTS)


def test_uploads_and_paths_a_page_may_add(library: Library, tmp_path: Path) -> None:
    library.create("up")
    saved = library.add_upload("up", "../../evil/notes.md", b"# Notes\nThe owl is called Hoot.")
    assert saved.parent.parent == library.config.data_dir / "document-uploads"
    assert saved.name == "notes.md" and saved.read_bytes().startswith(b"# Notes")
    for name, data, reason in [
        ("run.exe", b"MZ", "reads PDF, DOCX"),
        (".hidden.md", b"x", "reads PDF, DOCX"),
        ("big.txt", b"x" * (50 * 2**20 + 1), "at most 50 MB"),
    ]:
        with pytest.raises(DocumentsError, match=reason):
            library.add_upload("up", name, data)
    assert library.index("up") == "done"
    assert library.search(["up"], "owl", k=1)[0].file_name == "notes.md"
    library.remove("up")  # its uploads go with it
    assert not saved.parent.exists()
    library.create("up")  # a new collection of the same name starts empty
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    assert library.checked_paths([allowed], roots=[allowed]) == [str(allowed)]
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(DocumentsError, match="not under a folder allowed"):
        library.checked_paths([outside], roots=[allowed])
    with pytest.raises(DocumentsError, match="own data, models or settings"):
        library.checked_paths([library.config.data_dir.parent])


def test_a_typed_path_is_checked_against_roots_when_others_can_reach_the_app(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings"
    settings.mkdir()
    (settings / "notes.md").write_text("# Settings notes\n")
    allowed, outside = tmp_path / "shared", tmp_path / "outside"
    for folder in (allowed / "sub", outside):
        folder.mkdir(parents=True)
    config = Config(
        data_dir=tmp_path / "data",
        models_dir=tmp_path / "models",
        documents_roots=(allowed,),
        config_file=settings / "config.toml",
    )
    with Library(config) as library:
        library.create("typed")
        for given, reason in [
            (str(outside), "outside_roots"),
            (str(allowed / ".." / "outside"), "outside_roots"),
            (str(allowed / "missing"), "missing"),
            (str(settings), "own"),
            (str(settings / "notes.md"), "own"),
        ]:
            with pytest.raises(PathRefusedError) as refused:
                library.add_typed_paths("typed", [given], reachable_from_others=True)
            assert refused.value.reason == reason and refused.value.path == given
        assert library.collection("typed").paths == ()  # nothing was added
        added = library.add_typed_paths("typed", [str(allowed / "sub")], reachable_from_others=True)
        assert added.paths == (str(allowed / "sub"),)
        # Only this machine reaches the app: any folder but LocalChat's own.
        added = library.add_typed_paths("typed", [str(outside)], reachable_from_others=False)
        assert str(outside) in added.paths
        with pytest.raises(PathRefusedError, match="own data, models and settings"):
            library.add_typed_paths("typed", [str(settings)], reachable_from_others=False)
