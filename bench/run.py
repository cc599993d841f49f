"""LocalChat's benchmark: how much the app adds on top of llama.cpp, measured side by side.

    python bench/run.py              # full run, TinyLlama-shaped model (~15 min on 2 cores)
    python bench/run.py --model starter  # the same on the real starter model (SmolLM2-135M)
    python bench/run.py --quick      # smoke run: tiny model, few tokens, 1 repetition
    python bench/run.py --help

Four paths answer the same growing conversation, alternating turn by turn: raw llama-cpp-python
(the floor), the llm/ engine, the web app in Chromium, and the seed article's LangChain LlamaCpp
with its defaults. Prints a table with ratios to raw and the issue's targets (PASS/MISS), and
writes bench/results/latest.json and latest.md (`--quick` writes bench/cache/quick.json). A
missed target does not make the command fail: only a broken run does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.model import CACHE_DIR, QUICK, TINYLLAMA, ensure_model  # noqa: E402
from bench.probe_log import read_probe, text_times  # noqa: E402
from bench.workload import Settings, question  # noqa: E402

PROBE_DIR = ROOT / "bench" / "probe"
STARTER = "starter"  # --model starter: the real starter model
RESULTS_DIR = ROOT / "bench" / "results"


class BenchError(Exception):
    """The run cannot go on (a path failed); the message says which and why."""


class Runner:
    """A path served by `bench/runner.py` in its own process."""

    def __init__(self, kind: str, settings: Settings, log_dir: Path, probe_dir: Path) -> None:
        self.kind = kind
        env = dict(os.environ)
        if kind == "engine":
            # The probe timestamps tokens where the worker sends them (see bench/probe).
            env["PYTHONPATH"] = os.pathsep.join([str(PROBE_DIR), str(ROOT)])
            env["LOCALCHAT_BENCH_PROBE"] = str(probe_dir)
        self.log_path = log_dir / f"{kind}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "runner.py"),
                kind,
                json.dumps(settings.to_dict()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            cwd=ROOT,
        )
        self.load_s = 0.0

    def wait_ready(self) -> None:
        """Wait until the path has loaded its model (started in parallel with the others)."""
        ready = self._read()
        self.load_s = ready["load_s"]

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"the {self.kind} path stopped; its log ends with:\n{tail}")
        answer = json.loads(line)
        if "error" in answer:
            raise BenchError(f"{self.kind}: {answer['error']} (log: {self.log_path})")
        return answer

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def new(self, conversation: int) -> None:
        self.call("new", conversation=conversation)

    def ask(self, text: str, seed: int) -> dict[str, Any]:
        return self.call("ask", text=text, seed=seed)

    def memory(self) -> dict[str, int]:
        return self.call("memory")["rss"]

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
                self.process.stdin.flush()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny model, 8 tokens, 3 turns, 1 repetition",
    )
    p.add_argument(
        "--model",
        help="a GGUF file to use instead of the generated one, or 'starter': the starter model "
        "(SmolLM2-135M-Instruct, fetched into the cache folder; results in results/starter.*)",
    )
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads for every path")
    p.add_argument("--tokens", type=int, help="tokens generated per reply (default 64)")
    p.add_argument("--turns", type=int, help="turns per conversation (default 10)")
    p.add_argument("--reps", type=int, help="repetitions (default 3)")
    p.add_argument(
        "--paths",
        default="raw,engine,browser,seed",
        help="comma-separated subset of raw,engine,browser,seed",
    )
    p.add_argument("--no-browser", action="store_true", help="skip the Chromium path")
    p.add_argument(
        "--no-cold",
        action="store_true",
        help="skip re-evaluating the last prompt without the prefix cache",
    )
    p.add_argument("--startup-runs", type=int, help="start-ups of main.py to time (default 3)")
    p.add_argument("--out", type=Path, help="JSON result file (a .md file is written next to it)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR,
        help="where the generated model is kept (default bench/cache)",
    )
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the paths' logs and the app's data folder after a successful run",
    )
    args = p.parse_args(argv)
    quick = args.quick
    args.tokens = args.tokens or (8 if quick else 64)
    args.turns = args.turns or (3 if quick else 10)
    args.reps = args.reps or (1 if quick else 3)
    args.startup_runs = args.startup_runs if args.startup_runs is not None else (1 if quick else 3)
    default_out = "starter.json" if args.model == STARTER else "latest.json"
    args.out = args.out or (CACHE_DIR / "quick.json" if quick else RESULTS_DIR / default_out)
    paths = [x.strip() for x in args.paths.split(",") if x.strip()]
    unknown = set(paths) - set(report.PATH_ORDER)
    if unknown:
        p.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    if args.no_browser and "browser" in paths:
        paths.remove("browser")
    if "raw" not in paths:
        p.error("the raw path is the reference and cannot be left out")
    args.paths = paths
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = report.machine_info()
    warnings: list[str] = []
    if machine["load_average_start"][0] > 0.5:
        warnings.append(
            f"the machine was busy when the run started (load average "
            f"{machine['load_average_start'][0]:.2f}): absolute numbers are not reliable"
        )
    shape = QUICK if args.quick else TINYLLAMA
    if args.model == STARTER:
        from llm.starter import fetch_starter

        model = fetch_starter(args.cache_dir, show_bar=True).path
    elif args.model:
        model = Path(args.model)
    else:
        model = ensure_model(shape, args.cache_dir, args.threads)
    settings = Settings(
        model_path=str(model.resolve()),
        threads=args.threads,
        tokens=args.tokens,
        turns=args.turns,
        repetitions=args.reps,
    )
    work = args.work = Path(tempfile.mkdtemp(prefix="localchat-bench-"))
    probe_dir = work / "probe"
    probe_dir.mkdir()
    print(
        f"model {model.name}, {args.threads} threads, {args.tokens} tokens x {args.turns} turns x "
        f"{args.reps} repetitions; logs in {work}",
        flush=True,
    )

    paths: dict[str, Any] = {}
    load_s: dict[str, float] = {}
    extra: dict[str, Any] = {}
    offsets: dict[int, int] = {}
    try:
        for kind in ("raw", "engine", "seed"):
            if kind in args.paths:
                paths[kind] = Runner(kind, settings, work, probe_dir)
        for kind, runner in paths.items():
            runner.wait_ready()
            load_s[kind] = runner.load_s
            print(f"  {kind}: model loaded in {load_s[kind]:.1f} s", flush=True)
        if "browser" in args.paths:
            from bench import browser

            try:
                extra["startup_s"] = report.stat(
                    browser.startup_times(settings, work, args.startup_runs)
                )
                paths["browser"] = browser.BrowserPath(settings, work, probe_dir)
                load_s["browser"] = paths["browser"].load_s
                print(
                    f"  browser: app started, model loaded in {load_s['browser']:.1f} s", flush=True
                )
            except browser.BrowserUnavailable as exc:
                warnings.append(f"web app path skipped: {exc}")
                print(f"  browser: skipped ({exc})", flush=True)
        order = [k for k in report.PATH_ORDER if k in paths]

        # Warm-up: first touches of the model's pages, caches, the page's first render.
        for kind in order:
            started = time.time()
            paths[kind].new(0)
            measure(paths[kind], kind, "Hello, who are you?", settings.seed, probe_dir, offsets)
            print(f"  {kind}: warm-up turn in {time.time() - started:.1f} s", flush=True)

        results: dict[str, list[list[dict[str, Any]]]] = {k: [] for k in order}
        cold: list[dict[str, Any]] = []
        for rep in range(1, args.reps + 1):
            for kind in order:
                paths[kind].new(rep)
                results[kind].append([])
            for turn in range(args.turns):
                text = question(turn, rep)
                shift = (rep + turn) % len(order)  # rotate who goes first
                for kind in order[shift:] + order[:shift]:
                    r = measure(
                        paths[kind], kind, text, settings.seed_for(turn), probe_dir, offsets
                    )
                    if r["tokens"] != settings.tokens:
                        warnings.append(
                            f"{kind} rep {rep} turn {turn + 1}: {r['tokens']} tokens, "
                            f"not {settings.tokens}"
                        )
                    results[kind][-1].append(r)
                line = "  ".join(
                    f"{k} {results[k][-1][-1]['decode_tps'] or 0:.1f} t/s "
                    f"{results[k][-1][-1]['ttft_s']:.2f} s"
                    for k in order
                )
                print(f"rep {rep} turn {turn + 1:2}: {line}", flush=True)
            if rep == 1 and not args.no_cold:
                cold.append(paths["raw"].call("cold"))
                print(
                    f"  raw, turn {args.turns} prompt without prefix cache: "
                    f"{cold[-1]['ttft_s']:.2f} s",
                    flush=True,
                )

        memory: dict[str, dict[str, float]] = {}
        for kind in order:
            rss = paths[kind].memory()
            mb = {k: v / 1e6 for k, v in rss.items()}
            mb["total"] = sum(mb.values())
            memory[kind] = mb
        extra["memory_mb"] = memory
    finally:
        for path in paths.values():
            path.close()

    summary = {k: report.summarize_path(k, results[k]) for k in order}
    if "seed" in summary:
        # LlamaCpp's default n_ctx=512: the turn at which the conversation no longer fits.
        need = [r["prompt_tokens"] + settings.tokens for r in results["seed"][0]]
        over = next((i + 1 for i, n in enumerate(need) if n > 512), None)
        summary["seed"]["default_n_ctx_fails_at_turn"] = over
    result = {
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine, "load_average_end": os.getloadavg()},
        "settings": settings.to_dict(),
        "model": {"file": model.name, "size_mb": model.stat().st_size / 1e6},
        "quick": args.quick,
        "load_s": load_s,
        "summary": summary,
        "raw_turn_last_without_cache": report.stat([c["ttft_s"] for c in cold]),
        "raw_prompt_tps_long": report.stat([c["prompt_tps"] for c in cold]),
        "raw_prompt_tokens_long": report.stat([c["prompt_tokens"] for c in cold]),
        **extra,
        "warnings": warnings,
        "results": results,
    }
    result["targets"] = report.targets(summary, extra)
    return result


def measure(
    path: Any, kind: str, text: str, seed: int, probe_dir: Path, offsets: dict[int, int]
) -> dict[str, Any]:
    """One turn on one path, with the probe's token times attached where there are any."""
    try:
        r = path.ask(text, seed)
    except BenchError:
        raise
    except Exception as exc:  # e.g. a Playwright timeout: stop the run, say where
        log = getattr(getattr(path, "app", None), "log_path", None) or getattr(path, "log_path", "")
        raise BenchError(f"{kind}: {type(exc).__name__}: {exc} (log: {log})") from exc
    if kind == "engine":
        events = read_probe(probe_dir, r.get("worker_pid"), offsets)
        sent = [t for t, _ in text_times(events, "send")]
        times = r["token_times"]
        if len(sent) == len(times):
            r["pipe_latency"] = [c - s for c, s in zip(times, sent, strict=True)]
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    args.work = None
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        if args.work:
            print(f"logs kept in {args.work}", file=sys.stderr)
        return 1
    if not args.keep_logs:
        shutil.rmtree(args.work, ignore_errors=True)
    result["duration_s"] = time.time() - started
    print()
    print(report.terminal_table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md = args.out.with_suffix(".md")
    md.write_text(report.markdown(result), encoding="utf-8")
    print(f"\nwrote {args.out} and {md} ({result['duration_s']:.0f} s)")
    for w in result["warnings"]:
        print(f"warning: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
