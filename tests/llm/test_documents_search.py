"""Search and prompt context (llm/documents/search.py, context.py, chat.py) over generated
files of every format plus Korean ones: hybrid ranking, Korean keywords, the relevance
threshold, whole passages within a budget, whole documents, sources stored with a reply, the
message the model sees vs the one stored, and the GGUF and remote (/v1/embeddings) embedders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.documents_factory import FACTS, write_fact_files
from support.gguf_factory import write_embedding_model
from support.remote_server import llama_cpp_server

from llm.chat_log import ChatLog
from llm.config import Backend, Config
from llm.documents import DocumentsError, Library, ask_with_documents, build_context
from llm.documents.embedders import GgufEmbedder, RemoteEmbedder, WordLlamaEmbedder
from llm.documents.indexer import Indexer
from llm.engine import Engine
from llm.session import ChatSession
from llm.storage import ChatStore


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    root = tmp_path_factory.mktemp("search")
    config = Config(data_dir=root / "data", models_dir=root / "models")
    with Library(config) as library:
        library.create("facts", [write_fact_files(root / "docs")])
        Indexer(library.store, "facts", WordLlamaEmbedder()).run()
        yield library


def test_hybrid_search_finds_the_page(library: Library) -> None:
    top = library.search(["facts"], "When is the Zorblat festival held?", k=3)
    assert top[0].file_name == "festival.pdf" and top[0].page == 2
    assert top[0].label() == "festival.pdf, page 2"
    assert top[0].relevant and top[0].score > top[1].score
    docx = library.search(["facts"], "Captain Ferrow", k=1)[0]
    assert docx.file_name == "budget.docx" and "Moonbase | Captain Ferrow" in docx.text
    assert library.search(["facts"], "Mount Brel", k=1)[0].label() == (
        'mountain.html, section "Mount Brel"'
    )


@pytest.mark.parametrize(
    ("query", "file_name"),
    [("한강", "river-ko.txt"), ("서울", "seoul.md"), ("대한민국 수도", "seoul.md")],
)
def test_korean_words_are_found(library: Library, query: str, file_name: str) -> None:
    top = library.search(["facts"], query, k=1)[0]
    assert top.file_name == file_name and top.keyword == 1.0 and top.relevant
    assert library.search(["facts"], query, k=1, mode="keyword")[0].file_name == file_name


def test_modes_and_bad_requests(library: Library) -> None:
    vector = library.search(["facts"], "a long river in kilometres", k=1, mode="vector")
    assert vector[0].file_name == "river.txt"
    assert library.search(["facts"], "kilometres", mode="keyword")[0].file_name == "river.txt"
    with pytest.raises(DocumentsError, match="mode"):
        library.search(["facts"], "x", mode="fuzzy")
    with pytest.raises(DocumentsError, match="words"):
        library.search(["facts"], "   ")
    with pytest.raises(DocumentsError, match="no collection named 'nope'"):
        library.search(["nope"], "river")


def test_nothing_relevant_gives_no_block(library: Library) -> None:
    context = library.retrieve("What is the capital of France?", ["facts"], 2000)
    assert context.nothing_relevant and context.block == "" and context.sources == ()
    assert context.considered > 0  # passages were ranked, none passed the threshold


def test_passages_fit_the_budget_whole(library: Library) -> None:
    question = "Zorblat festival Velvo river"  # each passage holds half of the words
    full = library.retrieve(question, ["facts"], 5000)
    assert len(full.sources) >= 2
    assert full.block.count("\n[") + full.block.startswith("[") >= len(full.sources)
    for number, passage in enumerate(full.sources, start=1):
        assert f"[{number}] {passage.label()}\n{passage.text}" in full.block  # whole, numbered
    assert "cite them like [1]" in full.block
    tight = build_context(library.search(["facts"], question, k=10), 70)
    assert len(tight.sources) < len(full.sources) and tight.left_out > 0
    for passage in tight.sources:
        assert passage.text in tight.block
    assert build_context(library.search(["facts"], question), 5).nothing_relevant


def test_whole_document_mode(library: Library) -> None:
    source = next(r.path for r in library.files("facts") if r.path.endswith("festival.pdf"))
    document = library.whole_document("facts", source)
    assert document is not None and document.pages == (1, 2)
    assert "[page 2]" in document.text and "Zorblat festival" in document.text
    assert document.fits(4000) and not document.fits(10)
    assert document.block().startswith("The whole document festival.pdf:")
    assert library.whole_document("facts", "/no/such/file.pdf") is None


def test_chat_with_documents_stores_the_users_text_and_the_sources(
    library: Library, engine: Engine
) -> None:
    with ChatStore.in_folder(library.config.data_dir) as store:
        log = ChatLog.start(store, ChatSession(engine))
        plain = log.ask("Where is the Zorblat festival?")
        list(plain)
        question = "When is the Zorblat festival held?"
        saved, context = ask_with_documents(log, library, question, ["facts"])
        list(saved)
        assert not context.nothing_relevant
        assert saved.status == "complete"
        # The model saw the passages: a longer prompt than the same question without them.
        assert saved.figures.prompt_tokens > plain.figures.prompt_tokens + 20
        stored = store.get_chat(log.chat_id).messages
        assert stored[-2].content == question  # the user's own text, not the block
        assert [s["source"] for s in library.sources(saved.message_id)] == [
            p.source for p in context.sources
        ]
        assert library.sources(saved.message_id)[0]["page"] == 2
        assert library.sources(plain.message_id) == []
        library.set_chat_collections(log.chat_id, ["facts"])
        assert library.chat_collections(log.chat_id) == ["facts"]
        assert log.session.history[-2]["content"] == question  # history stays clean too


def test_engine_says_when_it_is_busy(engine: Engine) -> None:
    assert not engine.busy
    reply = iter(ChatSession(engine).ask("Hi"))
    next(reply)  # streaming: background indexing pauses now
    assert engine.busy
    for _ in reply:
        pass
    assert not engine.busy


def test_gguf_embedder_is_usable_as_langchain_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "bow.gguf"
    write_embedding_model(
        path, ["Zorblat", "festival", "Velvo", "river"], n_embd=256, pooling=False
    )
    embedder = GgufEmbedder(path)  # a file naming no pooling (a chat model's): mean pooling
    try:
        vectors = embedder.embed_documents(list(FACTS.values()))
        query = embedder.embed_query("Velvo river")
        assert len(vectors) == len(FACTS) and len(query) == 256
        scores = [sum(a * b for a, b in zip(v, query, strict=True)) for v in vectors]
        assert list(FACTS)[scores.index(max(scores))] == "river.txt"
    finally:
        embedder.close()


def test_remote_embeddings_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "bow.gguf"
    write_embedding_model(path, ["Zorblat", "festival", "Velvo", "river"], n_embd=256)
    with llama_cpp_server(
        path, "bow", tmp_path / "server.log", extra=("--embedding", "true")
    ) as server:
        config = Config(backends=(Backend(name="box", base_url=server.base_url),))
        embedder = RemoteEmbedder(config, "box", "bow")
        vectors = embedder.embed(list(FACTS.values()))
        assert vectors.shape == (len(FACTS), 256)
        query = embedder.embed(["Velvo river"])[0]
        assert list(FACTS)[int((vectors @ query).argmax())] == "river.txt"
        missing = RemoteEmbedder(
            Config(backends=(Backend(name="gone", base_url="http://127.0.0.1:9/v1"),)), "gone", "x"
        )
        with pytest.raises(DocumentsError, match="did not answer"):
            missing.embed(["x"])
