"""The OpenAI-compatible API measured (issue 22): streamed tokens per second through LocalChat's
/v1/chat/completions against raw llama-cpp-python and against llama-cpp-python's own server
(`python -m llama_cpp.server`), on the same model and settings, side by side in one run; then
fairness: a Chromium tab and an API client sending alternately, each request waiting behind
the other, and how soon each starts after the one ahead of it ends.

    .venv/bin/python bench/api.py            # about 3 minutes on 2 cores (builds the model once)
    .venv/bin/python bench/api.py --quick    # smoke run: tiny model, a few seconds
    .venv/bin/python bench/api.py --help

Every path generates exactly --tokens tokens per reply (end-of-generation ruled out: the app
through `ignore_eos`, raw llama-cpp-python and its server through a logit bias), with the same
prompt, seed, sampling and threads, one path at a time, in a rotating order. Decode tokens/s is
(tokens - 1) / (time from the first text to the last), timed where each path hands text to its
caller: in process for raw, on arrival of each server-sent event for the two servers.
Targets, printed as PASS / MISS: /v1 decode >= 0.97 x raw; every request of the fairness run
starts within 0.5 s of the one ahead of it ending. Results go to bench/results/api.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from bench.browser import CHROMIUM, CHROMIUM_ARGS, App  # noqa: E402
from bench.idle import wait_idle  # noqa: E402
from bench.model import CACHE_DIR, QUICK, TINYLLAMA, ensure_model  # noqa: E402
from bench.runner import RawPath, _decode_rate, _no_eog_bias  # noqa: E402
from bench.workload import SYSTEM_PROMPT, Settings, question  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
DECODE_TARGET = 0.97
FAIR_GAP_S = 0.5
READY_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_sse(
    url: str, body: dict[str, Any], record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One streamed chat completion: when each text arrived, the text, how it ended. `record`
    gets "first" as soon as the first text arrives (others wait for it)."""
    started = time.time()
    times: list[float] = []
    text, finish, usage = "", "", None
    with httpx2.stream("POST", url, json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    times.append(time.time())
                    text += piece
                    if record is not None and "first" not in record:
                        record["first"] = times[0]
                finish = choice.get("finish_reason") or finish
    tokens = (usage or {}).get("completion_tokens") or (
        body["max_tokens"] if finish == "length" else len(times)
    )
    return {
        "started": started,
        "first": times[0] if times else 0.0,
        "last": times[-1] if times else 0.0,
        "ttft_s": times[0] - started if times else 0.0,
        "tokens": tokens,
        "decode_tps": _decode_rate(times, tokens),
        "text": text,
    }


class ReferenceServer:
    """`python -m llama_cpp.server` on the same model and settings (a reference to measure
    against: it cannot share an already-loaded model, so it is not what LocalChat serves)."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", settings.model_path, "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(settings.n_ctx), "--n_threads", str(settings.threads),
            "--n_threads_batch", str(settings.threads), "--n_batch", str(settings.n_batch),
            "--n_gpu_layers", "0", "--verbose", "False",
        ]  # fmt: skip
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=log.parent
            )
        deadline = time.time() + READY_S
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-1500:]}")
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=2).is_success:
                    return
            except httpx2.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _body(settings: Settings, text: str, seed: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": settings.tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "min_p": settings.min_p,
        "repeat_penalty": settings.repeat_penalty,
        "seed": seed,
    }


def measure_decode(
    settings: Settings, app: App, reference: ReferenceServer | None, no_eog: list[int]
) -> dict[str, list[dict[str, Any]]]:
    """Each path answers the same single-turn question per repetition, one at a time."""
    raw = RawPath(settings)
    api_url = f"{app.url}v1/chat/completions"
    paths = ["raw", "api"] + (["server"] if reference else [])
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    for rep in range(settings.repetitions + 1):  # repetition 0 warms every path up
        order = paths[rep % len(paths) :] + paths[: rep % len(paths)]
        text, seed = question(0, rep), settings.seed_for(rep)
        for path in order:
            if path == "raw":
                raw.new()
                result = raw.ask(text, seed)
            elif path == "api":
                result = stream_sse(api_url, {**_body(settings, text, seed), "ignore_eos": True})
                wait_idle(app.worker_pid())
            else:
                bias = {str(t): -100.0 for t in no_eog}  # JSON has no -inf; -100 never wins
                result = stream_sse(
                    reference.url, {**_body(settings, text, seed), "logit_bias": bias}
                )
            if rep:
                results[path].append({k: v for k, v in result.items() if k != "token_times"})
            print(f"  {path:6} rep {rep}: {result['decode_tps']:.1f} tokens/s, "
                  f"{result['tokens']} tokens", flush=True)  # fmt: skip
    raw.llama.close()
    return results


_TAB_PROBE = """() => {
    window.lcTimes = [];
    new MutationObserver(() => {
        // The reply's text, live or finished: the live reply is drawn at most every 100 ms,
        // so a short reply's words may first show in the finished message.
        const all = document.querySelectorAll('#conversation .lc-msg-assistant .lc-md');
        const text = all.length ? all[all.length - 1].innerText.trim() : '';
        const s = window.lcTimes;
        if (!s.length || s[s.length - 1].text !== text)
            s.push({at: (performance.timeOrigin + performance.now()) / 1000, text: text});
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def measure_fairness(
    settings: Settings, app: App, rounds: int, probe_dir: Path
) -> list[dict[str, Any]]:
    """A tab and an API client take turns: each sends while the other's reply runs, so every
    request waits in the queue behind the other's. Returns each request's start and end."""
    from playwright.sync_api import sync_playwright

    api_url = f"{app.url}v1/chat/completions"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(app.url)
        page.wait_for_selector("#message")
        page.evaluate(_TAB_PROBE)
        offset = _page_clock_offset(page)
        requests: list[dict[str, Any]] = []
        threads: list[threading.Thread] = []
        for i in range(rounds):
            if i % 2 == 0:
                sent = time.time()
                page.locator("#message").fill(question(i, 900 + i))
                page.locator("#message").press("Enter")
                requests.append({"who": "tab", "sent": sent})
                _wait(lambda sent=sent: _tab_reply(page, offset, sent, None)[0] > 0)
            else:
                record: dict[str, Any] = {"who": "api", "sent": time.time()}
                requests.append(record)
                body = {**_body(settings, question(i, 900 + i), settings.seed_for(i))}
                thread = threading.Thread(
                    target=lambda r=record, b=body: r.update(stream_sse(api_url, b, r))
                )
                thread.start()
                threads.append(thread)
                _wait(lambda r=record, t=thread: r.get("first", 0) > 0 or not t.is_alive())
        for thread in threads:
            thread.join(timeout=300)
        _wait(lambda: page.locator("#message").is_enabled())
        time.sleep(0.5)
        for i, request in enumerate(requests):
            if request["who"] == "tab":
                until = requests[i + 2]["sent"] if i + 2 < len(requests) else None
                request["first"], request["last"] = _tab_reply(page, offset, request["sent"], until)
        browser.close()
    for before, after in itertools.pairwise(requests):
        after["seen_gap_s"] = round(after["first"] - before["last"], 3)
    # When the worker itself started and ended each request (the probe's notes): a request
    # "starts" when the worker takes it, which is what the queue decides.
    worker = _worker_events(probe_dir, since=requests[0]["sent"])
    for request, (start, done) in zip(requests, worker, strict=False):
        request["worker_start"], request["worker_done"] = start, done
    for before, after in itertools.pairwise(requests):
        if "worker_start" in after and "worker_done" in before:
            after["gap_s"] = round(after["worker_start"] - before["worker_done"], 3)
            # Sent while the one ahead ran: it waited in the queue (the case measured).
            after["queued"] = after["sent"] < before["worker_done"]
    return [{k: v for k, v in r.items() if k != "text"} for r in requests]


def _worker_events(probe_dir: Path, since: float) -> list[tuple[float, float]]:
    """(start, done) wall-clock times of each reply the app's worker wrote, in order."""
    events = []
    for path in probe_dir.glob("probe-*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if (
                event["dir"] == "send"
                and event["type"] in ("start", "done")
                and event["t"] >= since
            ):
                events.append((event["t"], event["type"]))
    events.sort()
    starts = [t for t, kind in events if kind == "start"]
    dones = [t for t, kind in events if kind == "done"]
    return list(zip(starts, dones, strict=False))


def _page_clock_offset(page: Any) -> float:
    before = time.time()
    page_now = page.evaluate("performance.timeOrigin + performance.now()") / 1000
    return page_now - (before + time.time()) / 2


def _tab_reply(page: Any, offset: float, since: float, until: float | None) -> tuple[float, float]:
    """Wall-clock times of the first and last reply text the tab showed between two sends."""
    samples = [
        s["at"] - offset
        for s in page.evaluate("window.lcTimes")
        # Not the placeholders shown before the first token: "…" and "waiting — N ahead".
        if s["text"] not in ("", "…") and not s["text"].startswith("waiting")
        and s["at"] - offset >= since and (until is None or s["at"] - offset < until)
    ]  # fmt: skip
    return (samples[0], samples[-1]) if samples else (0.0, 0.0)


def _wait(done: Any, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not done():
        if time.time() > deadline:
            raise TimeoutError("the request did not start")
        time.sleep(0.01)


def summarize(decode: dict[str, list[dict[str, Any]]], fairness: list[dict[str, Any]]) -> dict:
    rates = {p: statistics.median(r["decode_tps"] for r in rs) for p, rs in decode.items() if rs}
    gaps = [r["gap_s"] for r in fairness if r.get("queued")]
    summary: dict[str, Any] = {"decode_tps": {p: round(v, 2) for p, v in rates.items()}}
    summary["api_vs_raw"] = round(rates["api"] / rates["raw"], 3)
    if "server" in rates:
        summary["server_vs_raw"] = round(rates["server"] / rates["raw"], 3)
        summary["api_vs_server"] = round(rates["api"] / rates["server"], 3)
    summary["fairness_max_gap_s"] = max(gaps) if gaps else None
    summary["targets"] = {
        "api decode >= 0.97x raw": summary["api_vs_raw"] >= DECODE_TARGET,
        "each request starts <= 0.5 s after the one ahead": bool(gaps) and max(gaps) <= FAIR_GAP_S,
    }
    return summary


def markdown(result: dict[str, Any]) -> str:
    s, summary = result["settings"], result["summary"]
    names = {"raw": "raw llama-cpp-python", "api": "LocalChat /v1", "server": "llama_cpp.server"}
    lines = [
        "| path | decode tokens/s (median) | × raw | first token (s, median) |",
        "|---|---|---|---|",
    ]
    for path, reps in result["decode"].items():
        rate = summary["decode_tps"][path]
        ttft = statistics.median(r["ttft_s"] for r in reps)
        ratio = rate / summary["decode_tps"]["raw"]
        lines.append(f"| {names[path]} | {rate:.1f} | {ratio:.3f} | {ttft:.2f} |")
    lines += [
        "",
        "| fairness: request | who | behind | waited in the queue | worker took it, after the "
        "one ahead ended (s) |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["fairness"]):
        behind = result["fairness"][i - 1]["who"] if i else "-"
        queued = {True: "yes", False: "no (sent after it ended)"}.get(r.get("queued"), "-")
        lines.append(f"| {i + 1} | {r['who']} | {behind} | {queued} | {r.get('gap_s', '-')} |")
    lines += ["", "| target | measured | |", "|---|---|---|"]
    decode_ok = summary["targets"]["api decode >= 0.97x raw"]
    lines.append(
        f"| /v1 decode ≥ 0.97 × raw | {summary['api_vs_raw']:.3f}× | "
        f"{'PASS' if decode_ok else 'MISS'} |"
    )
    gap = summary["fairness_max_gap_s"]
    ok = summary["targets"]["each request starts <= 0.5 s after the one ahead"]
    lines.append(f"| each request starts ≤ 0.5 s after the one ahead | max {gap} s | "
                 f"{'PASS' if ok else 'MISS'} |")  # fmt: skip
    lines += [
        "",
        f"Model {Path(s['model_path']).name}, {s['threads']} threads, {s['tokens']} tokens per "
        f"reply, {s['repetitions']} repetitions; {result['machine']}; load average "
        f"{result['load']}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/api.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 8 tokens, 1 rep")
    p.add_argument("--model", help="a GGUF file instead of the generated TinyLlama-shaped one")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, help="tokens per reply (default 128)")
    p.add_argument("--reps", type=int, help="repetitions (default 3)")
    p.add_argument("--fair-rounds", type=int, help="requests in the fairness run (default 8)")
    p.add_argument("--no-reference", action="store_true", help="skip llama_cpp.server")
    p.add_argument("--no-browser", action="store_true", help="skip the fairness run (Chromium)")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--out", type=Path, help="JSON result file (a .md file is written beside it)")
    args = p.parse_args(argv)
    args.tokens = args.tokens or (8 if args.quick else 128)
    args.reps = args.reps or (1 if args.quick else 3)
    args.fair_rounds = args.fair_rounds or (4 if args.quick else 8)
    args.out = args.out or (
        args.cache_dir / "api-quick.json" if args.quick else RESULTS_DIR / "api.json"
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = Path(args.model) if args.model else ensure_model(
        QUICK if args.quick else TINYLLAMA, args.cache_dir, args.threads
    )  # fmt: skip
    settings = Settings(
        model_path=str(model), threads=args.threads, tokens=args.tokens, repetitions=args.reps
    )
    work = Path(tempfile.mkdtemp(prefix="localchat-bench-api-"))
    load_start = os.getloadavg()[0]
    print(f"model {model.name}, {args.threads} threads, {args.tokens} tokens", flush=True)
    # The app with the pages and the API; the probe makes its page replies ignore EOS too, and
    # notes when the worker starts and ends each reply.
    (work / "probe").mkdir()
    app = App(settings, work, model=True, probe_dir=work / "probe", name="app",
              extra_config="\n[api]\nenabled = true\n")  # fmt: skip
    reference = None
    try:
        app.wait_until_serving(READY_S)
        if not args.no_reference:
            try:
                reference = ReferenceServer(settings, work / "llama_cpp_server.log")
            except (ImportError, RuntimeError) as exc:
                print(f"llama_cpp.server not measured: {exc}", flush=True)
        import llama_cpp

        probe = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
        no_eog = list(_no_eog_bias(probe))
        print("decode through each path:", flush=True)
        decode = measure_decode(settings, app, reference, no_eog)
        if reference:
            reference.stop()
            reference = None
        fairness: list[dict[str, Any]] = []
        if not args.no_browser and Path(CHROMIUM).exists():
            print("fairness: a tab and an API client taking turns", flush=True)
            fairness = measure_fairness(settings, app, args.fair_rounds, work / "probe")
    finally:
        if reference:
            reference.stop()
        app.stop()
    result = {
        "settings": settings.to_dict(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, llama_cpp_python {llama_cpp.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "decode": decode,
        "fairness": fairness,
        "load": f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
    }
    result["summary"] = summarize(decode, fairness)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
