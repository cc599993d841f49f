"""Documents bench: retrieval quality, indexing speed and query latency at scale, and reply
speed while indexing. See bench/README.md ("Documents").

    .venv/bin/python bench/documents.py            # everything (about 5 minutes on 2 cores)
    .venv/bin/python bench/documents.py --quick    # small scale, for a smoke run
    .venv/bin/python bench/documents.py --parts quality,scale

Writes bench/results/documents.json and .md (--quick: bench/cache/documents-quick.*).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.documents_set import DOCUMENTS, QUESTIONS, UNANSWERABLE  # noqa: E402
from llm.config import Config, SamplingParams  # noqa: E402
from llm.documents import Library  # noqa: E402
from llm.documents.embedders import WordLlamaEmbedder  # noqa: E402
from llm.documents.indexer import Indexer  # noqa: E402
from llm.storage import now  # noqa: E402

MODES = ("keyword", "vector", "hybrid")


def library_in(folder: Path, models_dir: Path | None = None) -> Library:
    config = Config(data_dir=folder / "data", models_dir=models_dir or folder / "models")
    return Library(config)


# -- quality ----------------------------------------------------------------------------------


def quality(work: Path) -> dict[str, Any]:
    """recall@5 (and @1) per mode, English and Korean apart; the relevance threshold's effect."""
    docs = work / "quality"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text, encoding="utf-8")
    with library_in(work / "quality-db") as library:
        library.create("set", [docs])
        Indexer(library.store, "set", WordLlamaEmbedder()).run()
        results: dict[str, Any] = {"documents": len(DOCUMENTS), "questions": len(QUESTIONS)}
        for mode in MODES:
            hits = {"en": [0, 0, 0], "ko": [0, 0, 0]}  # @1, @5, asked
            for question, answer, korean in QUESTIONS:
                found = [
                    Path(p.source).name for p in library.search(["set"], question, k=5, mode=mode)
                ]
                row = hits["ko" if korean else "en"]
                row[0] += found[:1] == [answer]
                row[1] += answer in found
                row[2] += 1
            results[mode] = {
                lang: {"recall@1": r[0] / r[2], "recall@5": r[1] / r[2], "questions": r[2]}
                for lang, r in hits.items()
            }
            both = [hits["en"][i] + hits["ko"][i] for i in range(3)]
            results[mode]["all"] = {"recall@1": both[0] / both[2], "recall@5": both[1] / both[2]}
        kept = 0
        answered = 0
        for question, answer, _ in QUESTIONS:
            context = library.retrieve(question, ["set"], 2000)
            answered += any(Path(p.source).name == answer for p in context.sources)
        for question in UNANSWERABLE:
            kept += not library.retrieve(question, ["set"], 2000).nothing_relevant
        results["threshold"] = {
            "answer_in_context": answered / len(QUESTIONS),
            "unanswerable_with_passages": kept,
            "unanswerable": len(UNANSWERABLE),
        }
    return results


# -- scale ------------------------------------------------------------------------------------


def vocabulary(size: int = 5000) -> list[str]:
    """Made-up words from syllables: a vocabulary as large as a real document set's."""
    import itertools

    syllables = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ar", "en")]
    words = ("".join(p) for n in (2, 3) for p in itertools.product(syllables, repeat=n))
    return list(itertools.islice(words, size))


WORDS = vocabulary()


def write_corpus(folder: Path, files: int, paragraphs: int) -> None:
    """`files` text files of `paragraphs` paragraphs (~700 characters: one passage each),
    words drawn with Zipf's law (a few common, most rare), as in real text."""
    import random

    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(len(WORDS))]
    folder.mkdir(parents=True)
    for i in range(files):
        parts = []
        for j in range(paragraphs):
            words = " ".join(rng.choices(WORDS, weights, k=90))
            parts.append(f"Document {i} part {j} code K{i:04}{j:02}. {words}.")
        (folder / f"doc{i:04}.txt").write_text("\n\n".join(parts), encoding="utf-8")


def scale(work: Path, files: int, paragraphs: int) -> dict[str, Any]:
    """Indexing speed through the real helper process, then query latency."""
    corpus = work / "corpus"
    write_corpus(corpus, files, paragraphs)
    with library_in(work / "scale-db") as library:
        library.create("corpus", [corpus])
        started = time.monotonic()
        state = library.index("corpus")
        seconds = time.monotonic() - started
        info = library.collection("corpus")
        again_started = time.monotonic()
        library.index("corpus")  # nothing changed: a scan only
        rescan = time.monotonic() - again_started
        queries = [
            f"{a} {b} near the {c}" for a, b, c in zip(WORDS, WORDS[3:], WORDS[7:], strict=False)
        ]
        queries += [f"code K{i:04}05" for i in range(0, files, max(1, files // 10))]
        cold_started = time.monotonic()
        library.search(["corpus"], queries[0])  # loads the vectors into memory
        cold = time.monotonic() - cold_started
        timings = {mode: [] for mode in MODES}
        for query in queries:
            for mode in MODES:
                began = time.perf_counter()
                library.search(["corpus"], query, k=5, mode=mode)
                timings[mode].append((time.perf_counter() - began) * 1000)
        return {
            "state": state,
            "files": info.files_indexed,
            "chunks": info.chunks,
            "index_seconds": seconds,
            "chunks_per_second": info.chunks / seconds,
            "rescan_seconds": rescan,
            "first_query_ms": cold * 1000,
            "query_ms_median": {m: statistics.median(t) for m, t in timings.items()},
            "query_ms_p95": {m: sorted(t)[int(len(t) * 0.95) - 1] for m, t in timings.items()},
            "database_mb": library.store.path.stat().st_size / 2**20,
        }


# -- reply speed while indexing ---------------------------------------------------------------


def reply_speed(work: Path, model: Path, rounds: int, tokens: int) -> dict[str, Any]:
    """Tokens/s of replies side by side: idle, while indexing (pausing, as the app runs it),
    and while indexing without pausing (nice 10 only), alternating in each round."""
    from llm.engine import Engine
    from llm.session import ChatSession

    corpus = work / "busy-corpus"
    write_corpus(corpus, 600, 20)
    engine = Engine(n_ctx=2048)
    engine.load(model)
    session = ChatSession(
        engine,
        chat_format="auto",
        params=SamplingParams(max_tokens=tokens, ignore_eos=True, temperature=0.7, seed=1),
    )
    rates: dict[str, list[float]] = {
        "idle": [],
        "indexing, pausing": [],
        "indexing, not pausing": [],
    }
    with library_in(work / "busy-db") as library:
        library.create("busy", [corpus])

        def reply() -> float:
            """Decode speed as the caller sees it: tokens after the first, per second."""
            session.reset()
            answer = session.ask("Tell me about rivers and mountains in one long story.")
            first = 0.0
            for _ in answer:
                first = first or time.perf_counter()
            seconds = time.perf_counter() - first
            return (answer.figures.completion_tokens - 1) / seconds

        reply()  # warm-up
        indexed = 0  # passages stored by the helpers during the indexing paths
        for round_number in range(rounds):
            order = list(rates)
            order = order[round_number % 3 :] + order[: round_number % 3]
            for path in order:
                if path == "idle":
                    rates[path].append(reply())
                    continue
                pausing = path == "indexing, pausing"
                cancel = threading.Event()
                thread = threading.Thread(
                    target=library.index,
                    args=("busy",),
                    kwargs={
                        "is_busy": (lambda: engine.busy) if pausing else (lambda: False),
                        "cancel": cancel,
                    },
                )
                # From zero each time, so the helper has work for the whole reply.
                library.remove("busy")
                library.create("busy", [corpus])
                collection = library.store.collection("busy")
                started = now()
                thread.start()
                deadline = time.monotonic() + 60
                # The reply starts once this run's helper is really working (a file stored).
                while time.monotonic() < deadline:
                    job = library.store.job(collection.id)
                    if job and job.started >= started and job.files_done:
                        break
                    time.sleep(0.05)
                rates[path].append(reply())
                cancel.set()
                thread.join(120)
                indexed += library.progress("busy").chunks_done  # this run started at 0
    engine.close()

    # Paired: each round's paths ran seconds apart, so a round's ratio to its own idle reply
    # cancels most of what other programs on the machine do to all of them.
    def paired(path: str) -> float:
        return statistics.median(r / i for r, i in zip(rates[path], rates["idle"], strict=True))

    return {
        "model": model.name,
        "tokens": tokens,
        "rounds": rounds,
        "tokens_per_second": {path: statistics.median(r) for path, r in rates.items()},
        "all": rates,
        "ratio_pausing": paired("indexing, pausing"),
        "ratio_not_pausing": paired("indexing, not pausing"),
        "passages_indexed": indexed,
    }


# -- report -----------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Documents bench", "", f"Run {results['when']} on {os.cpu_count()} cores.", ""]
    q = results.get("quality")
    if q:
        lines += [
            f"## Retrieval quality ({q['questions']} questions, {q['documents']} documents)",
            "",
            "| mode | recall@5 all | recall@5 English | recall@5 Korean | recall@1 all |",
            "|---|---|---|---|---|",
        ]
        for mode in MODES:
            m = q[mode]
            lines.append(
                f"| {mode} | {m['all']['recall@5']:.2f} | {m['en']['recall@5']:.2f} | "
                f"{m['ko']['recall@5']:.2f} | {m['all']['recall@1']:.2f} |"
            )
        t = q["threshold"]
        lines += [
            "",
            f"Relevance threshold: the answering document is in the prompt block for "
            f"{t['answer_in_context']:.0%} of the questions; {t['unanswerable_with_passages']} of "
            f"{t['unanswerable']} unanswerable questions still got passages.",
            "",
        ]
    s = results.get("scale")
    if s:
        med, p95 = s["query_ms_median"], s["query_ms_p95"]
        lines += [
            f"## Scale ({s['files']:,} files, {s['chunks']:,} passages)",
            "",
            f"- indexing: {s['index_seconds']:.0f} s, **{s['chunks_per_second']:.0f} passages/s** "
            f"(helper process, WordLlama, nice 10); re-index with nothing changed: "
            f"{s['rescan_seconds']:.1f} s; database {s['database_mb']:.0f} MB",
            f"- first query (reads the vectors): {s['first_query_ms']:.0f} ms",
            "- query, median / p95: "
            + ", ".join(f"{m} {med[m]:.1f} / {p95[m]:.1f} ms" for m in MODES),
            "",
        ]
    r = results.get("reply")
    if r:
        tps = r["tokens_per_second"]
        lines += [
            f"## Reply speed while indexing ({r['model']}, {r['tokens']} tokens, "
            f"{r['rounds']} rounds, medians)",
            "",
            "| path | tokens/s | vs idle (median of per-round ratios) |",
            "|---|---|---|",
        ]
        ratios = {"idle": 1.0, "indexing, pausing": r["ratio_pausing"]}
        ratios["indexing, not pausing"] = r["ratio_not_pausing"]
        for path, rate in tps.items():
            lines.append(f"| {path} | {rate:.1f} | {ratios[path]:.3f} |")
        lines += [
            "",
            f"Target: within 5% of idle while indexing (pausing): "
            f"{'PASS' if r['ratio_pausing'] >= 0.95 else 'FAIL'} ({r['ratio_pausing']:.3f}).",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small scale, 1 round")
    parser.add_argument("--parts", default="quality,scale,reply")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--paragraphs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--model", help="GGUF for the reply-speed part (default: bench model)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if args.quick:
        args.files, args.paragraphs, args.rounds, args.tokens = 40, 5, 1, 16
    out = ROOT / ("bench/cache/documents-quick" if args.quick else "bench/results/documents")
    results: dict[str, Any] = {}
    if out.with_suffix(".json").is_file():  # a run of some parts keeps the others' results
        results = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    results.update({"when": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick})
    with tempfile.TemporaryDirectory(prefix="docs-bench-") as tmp:
        work = Path(tmp)
        if "quality" in parts:
            results["quality"] = quality(work)
            print(json.dumps(results["quality"], indent=1))
        if "scale" in parts:
            results["scale"] = scale(work, args.files, args.paragraphs)
            print(json.dumps(results["scale"], indent=1))
        if "reply" in parts:
            if args.model:
                model = Path(args.model)
            else:
                from bench.model import QUICK, TINYLLAMA, ensure_model

                model = ensure_model(QUICK if args.quick else TINYLLAMA)
            results["reply"] = reply_speed(work, model, args.rounds, args.tokens)
            print(json.dumps(results["reply"], indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
