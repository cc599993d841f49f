"""The web app measured end to end: `python main.py` as a subprocess, Chromium via Playwright.

How a token's trip to the screen is timed, with one clock (the machine's wall clock):
- The app runs with `bench/probe` on PYTHONPATH: its worker notes when each token's text is
  sent to the app, the app notes when it receives it (see bench/probe/sitecustomize.py).
- The page runs a MutationObserver (installed before the app's scripts) that records, for
  every change of the reply on screen, its text and the time, and the time of the next
  animation frame after it, i.e. when that text can first be painted. The reply being written
  is the `#live_reply` message of the conversation (the app streams it token by token, see
  web/live.py, rendered as Markdown into its `.lc-md`); once finished it is an ordinary
  assistant message of `#conversation` (its last tokens may only ever be shown there). The
  time of the Enter keydown in the `#message` input is recorded the same way.
- Page times (`performance.timeOrigin + performance.now()`) are put on the wall clock with an
  offset measured before each turn (the smallest of three round trips bounds its error).
- Token i is on screen at the first frame whose live text, or new bubble, starts with the
  reply's text up to and including token i (letters and digits only, as markdown may change
  spaces and punctuation); its latency is that frame time minus the time the worker sent it.
- A turn has ended when the worker's "done" is on disk and the page shows a new bubble with
  its figures line, `#live_reply` is gone and the input is enabled again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.idle import wait_idle
from bench.probe_log import done_event, read_probe, text_times
from bench.workload import SYSTEM_PROMPT, Settings

ROOT = Path(__file__).resolve().parent.parent
PROBE_DIR = ROOT / "bench" / "probe"
CHROMIUM = "/usr/bin/chromium"
# The finished replies of the conversation (web/static/conversation.js).
ROWS = "#conversation .lc-msg-assistant:not(.lc-streaming)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_PAGE_PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const ROWS = '#conversation .lc-msg-assistant:not(.lc-streaming)';
  const bench = window.__bench = {enter: null, events: []};
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') bench.enter = now();
  }, true);
  let last = null;
  const snapshot = () => {
    // textContent, not innerText: no layout forced on every mutation.
    const live = document.querySelector('#live_reply .lc-md');
    const liveText = live ? live.textContent : null;
    const rows = document.querySelectorAll(ROWS);
    const row = rows[rows.length - 1];
    const bubble = row ? (row.querySelector('.lc-bubble') || row) : null;
    const text = bubble ? bubble.textContent : '';
    const key = rows.length + '|' + liveText + '|' + text;
    if (key === last) return;
    last = key;
    const event = {t: now(), frame: null, rows: rows.length, live: liveText, text: text};
    bench.events.push(event);
    requestAnimationFrame(() => { event.frame = now(); });
  };
  new MutationObserver(snapshot).observe(document, {subtree: true, childList: true,
                                                    characterData: true});
})();
"""


class BrowserUnavailable(Exception):
    """The web app or Chromium cannot be used (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _squash(text: str) -> str:
    # Letters and digits only: markdown rendering may drop or change spaces and punctuation.
    return re.sub(r"[\W_]+", "", text)


def _shown_prefix(visible: str, full: str) -> int:
    """How many characters of `full` (squashed) `visible` shows from the start."""
    n = 0
    while n < min(len(visible), len(full)) and visible[n] == full[n]:
        n += 1
    return n


def app_config(settings: Settings) -> str:
    """The app's config.toml for the bench: same threads, context and sampling as the others."""
    inference = {
        "n_ctx": settings.n_ctx,
        "n_threads": settings.threads,
        "n_batch": settings.n_batch,
        "system_prompt": SYSTEM_PROMPT,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "min_p": settings.min_p,
        "repeat_penalty": settings.repeat_penalty,
        "max_tokens": settings.tokens,
        "seed": settings.seed,
    }
    lines = ["[app]", 'language = "en"', "", "[inference]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in inference.items()]  # JSON scalars are TOML
    return "\n".join(lines) + "\n"


class App:
    """`python main.py` running on a free port with the bench's config and its own data folder."""

    def __init__(
        self,
        settings: Settings,
        work: Path,
        *,
        model: bool,
        probe_dir: Path | None,
        name: str,
        extra_config: str = "",
    ) -> None:
        if not (ROOT / "main.py").is_file():
            raise BrowserUnavailable("main.py does not exist yet")
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config.toml"
        config.write_text(app_config(settings) + extra_config, encoding="utf-8")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ)
        env.update(
            LOCALCHAT_CONFIG=str(config),
            LOCALCHAT_DATA_DIR=str(work / "app-data"),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
        )
        env.pop("LOCALCHAT_MODELS_DIR", None)
        if probe_dir is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(PROBE_DIR), str(ROOT)])
            env["LOCALCHAT_BENCH_PROBE"] = str(probe_dir)
            env["LOCALCHAT_BENCH_IGNORE_EOS"] = "1"
        model_path = Path(settings.model_path)
        # Without a model: an empty folder (main.py would load a folder's only model).
        models_dir = model_path.parent if model else folder / "no-models"
        models_dir.mkdir(exist_ok=True)
        command = [sys.executable, str(ROOT / "main.py"), "--port", str(self.port)]
        command += ["--models-dir", str(models_dir)]
        if model:
            command += ["--model", model_path.name]
        self.log_path = folder / "app.log"
        with open(self.log_path, "wb") as log:
            self.started = time.time()
            self.process = subprocess.Popen(
                command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def wait_until_serving(self, timeout_s: float) -> float:
        """Seconds from start until GET / answered 200."""
        deadline = self.started + timeout_s
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise BrowserUnavailable(
                    f"main.py exited with status {self.process.returncode}: {self.log()[-1500:]}"
                )
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return time.time() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise BrowserUnavailable(
            f"main.py did not answer within {timeout_s:.0f} s: {self.log()[-1500:]}"
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def worker_pid(self) -> int | None:
        import psutil

        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if "llm.worker" in " ".join(child.cmdline()):
                    return child.pid
        return None

    def memory(self) -> dict[str, int]:
        import psutil

        app = psutil.Process(self.process.pid)
        rss = {"process": app.memory_info().rss, "worker": 0}
        for child in app.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                rss["worker"] += child.memory_info().rss
        return rss

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def startup_times(settings: Settings, work: Path, runs: int) -> list[float]:
    """Seconds from `python main.py` (no model to load) until the page answers, `runs` times."""
    times = []
    for i in range(runs):
        app = App(settings, work, model=False, probe_dir=None, name=f"startup-{i}")
        try:
            times.append(app.wait_until_serving(60))
        finally:
            app.stop()
    return times


class BrowserPath:
    """The app with the model loaded, one Chromium tab typing the questions."""

    def __init__(self, settings: Settings, work: Path, probe_dir: Path) -> None:
        if not Path(CHROMIUM).exists():
            raise BrowserUnavailable(f"no Chromium at {CHROMIUM}")
        self.s = settings
        self.probe_dir = probe_dir
        self.offsets: dict[int, int] = {}
        self.app = App(settings, work, model=True, probe_dir=probe_dir, name="app")
        self._playwright = self._browser = None
        try:
            self.load_s = self.app.wait_until_serving(300)  # includes loading the model
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            self.page = self._browser.new_page(viewport={"width": 1280, "height": 800})
            self.page.set_default_timeout(30_000)
            self.page.add_init_script(_PAGE_PROBE)
            self.page.goto(self.app.url)
            self.page.wait_for_selector("#message")
        except Exception:
            self.close()
            raise
        self.worker = self.app.worker_pid()
        if self.worker is None:
            self.close()
            raise BrowserUnavailable("the app started no model worker (was the model loaded?)")

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the app, its worker, Chromium and Playwright's driver: where
        the machine's cores go while a reply streams to the page (a diagnostic)."""
        import psutil

        totals = {"app": 0.0, "worker": 0.0, "chromium": 0.0, "playwright": 0.0}
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.pid == self.app.process.pid:
                    group = "app"
                elif proc.pid == self.worker:
                    group = "worker"
                else:
                    command = " ".join(proc.cmdline())
                    group = next((g for g in ("chromium", "playwright") if g in command), "")
                if group:
                    times = proc.cpu_times()
                    totals[group] += times.user + times.system
        return totals

    def _chromium_idle(self, window_s: float = 0.25, limit_s: float = 10.0) -> tuple[float, float]:
        """(wall time, Chromium CPU seconds so far) once Chromium used under 2 % of a core
        for a `window_s` window (at most `limit_s`): the end of its work for a turn."""
        started = time.time()
        before = self._cpu_seconds()["chromium"]
        at = time.time()
        while time.time() - started < limit_s:
            time.sleep(window_s)
            now, used = time.time(), self._cpu_seconds()["chromium"]
            if used - before < 0.02 * (now - at):
                return at, before  # the quiet window is not part of the turn
            at, before = now, used
        return at, before

    def _clock_offset(self) -> float:
        """Page clock minus wall clock, from the fastest of three round trips."""
        best = None
        for _ in range(3):
            before = time.time()
            page_now = self.page.evaluate("performance.timeOrigin + performance.now()") / 1000
            after = time.time()
            if best is None or after - before < best[0]:
                best = (after - before, page_now - (before + after) / 2)
        return best[1]

    def new(self, conversation: int) -> None:
        self.page.locator("#new_chat").click()
        # A function, not an expression: Playwright evaluates a polled expression with eval(),
        # which the app's Content-Security-Policy forbids (web/local_only.py).
        self.page.wait_for_function(f"() => document.querySelectorAll('{ROWS}').length === 0")
        self._wait_input_enabled(30_000)

    def _wait_input_enabled(self, timeout_ms: float) -> None:
        # The message input is disabled while a reply runs.
        self.page.wait_for_function(
            "() => { const box = document.querySelector('#message');"
            " return box !== null && !box.disabled; }",
            timeout=timeout_ms,
        )

    def ask(self, text: str, seed: int) -> dict[str, Any]:
        del seed  # the app draws with its configured seed
        page = self.page
        offset = self._clock_offset()
        cpu_before = self._cpu_seconds()
        rows_before = page.locator(ROWS).count()
        self._wait_input_enabled(30_000)
        page.evaluate("window.__bench.events = []; window.__bench.enter = null;")
        box = page.locator("#message")
        box.fill(text)
        box.press("Enter")
        # The reply has ended when the worker's "done" is on disk and the page shows the
        # finished bubble (its figures line), the live text gone and the input enabled again;
        # each wait is bounded (generously: the machine may be busy).
        budget = 60 + self.s.tokens * 2.0
        worker_events = read_probe(self.probe_dir, self.worker, self.offsets, wait_s=budget)
        app_events = read_probe(self.probe_dir, self.app.process.pid, self.offsets, wait_s=10)
        page.wait_for_function(
            """(n) => { const rows = document.querySelectorAll(
                          '#conversation .lc-msg-assistant:not(.lc-streaming)');
                        const box = document.querySelector('#message');
                        return rows.length > n &&
                               rows[rows.length - 1].textContent.includes('tokens/s') &&
                               document.querySelector('#live_reply') === null &&
                               box !== null && !box.disabled; }""",
            arg=rows_before,
            timeout=60_000,
        )
        page.wait_for_timeout(50)  # let the last animation frame be stamped
        probe = page.evaluate("window.__bench")
        cpu = {k: v - cpu_before[k] for k, v in self._cpu_seconds().items()}
        result = self._result(probe, offset, worker_events, app_events, rows_before)
        result["cpu_s"] = cpu
        # The whole turn for Chromium: from Enter until the page is idle again (issue #23).
        idle_at, chromium = self._chromium_idle()
        turn_s = idle_at - result["started"]
        result["chromium_turn_s"] = turn_s
        result["chromium_turn_cores"] = (chromium - cpu_before["chromium"]) / turn_s
        wait_idle(self.worker)  # the worker's work for the next turn is not the next path's
        return result

    def _result(
        self,
        probe: dict[str, Any],
        offset: float,
        worker_events: list[dict[str, Any]],
        app_events: list[dict[str, Any]],
        rows_before: int,
    ) -> dict[str, Any]:
        sent = text_times(worker_events, "send")
        received = text_times(app_events, "recv")
        done = done_event(worker_events) or {}
        figures = done.get("figures") or {}
        if not sent or probe.get("enter") is None:
            raise RuntimeError("browser turn left no token or keydown record")
        # Cumulative reply text (whitespace removed) after each token.
        cumulative, acc = [], ""
        for _, piece in sent:
            acc += _squash(piece)
            cumulative.append(len(acc))
        full = acc
        enter = probe["enter"] / 1000 - offset
        shown: list[tuple[float, int]] = []  # (wall time of the frame, reply chars visible)
        for event in probe["events"]:
            # What shows the reply: the live text while it is written, then the new bubble.
            candidates = [event.get("live") or ""]
            if event["rows"] > rows_before:
                candidates.append(event["text"])
            n = max(_shown_prefix(_squash(c), full) for c in candidates)
            stamp = event["frame"] if event["frame"] is not None else event["t"]
            shown.append((stamp / 1000 - offset, n))
        screen_times: list[float | None] = []
        for chars in cumulative:
            # A token without letters or digits counts as shown with the first one that has some.
            screen_times.append(next((t for t, n in shown if n >= max(chars, 1)), None))
        latency = [st - t for st, (t, _) in zip(screen_times, sent, strict=True) if st is not None]
        first_screen = next((t for t in screen_times if t is not None), None)
        last_screen = screen_times[-1]
        n = len(sent)
        # Tokens, not texts sent: a token ending inside a UTF-8 character goes with the next.
        generated = figures.get("completion_tokens") or n
        # None when the whole reply reached the screen in one update (too fast to measure).
        decode = (
            (generated - 1) / (last_screen - first_screen)
            if first_screen is not None and last_screen is not None and last_screen > first_screen
            else None
        )
        pipe = []
        if len(received) == len(sent):
            pipe = [r - s for (r, _), (s, _) in zip(received, sent, strict=True)]
        if first_screen is None:
            raise RuntimeError("the reply never appeared on the page")
        return {
            "started": enter,
            "ttft_s": first_screen - enter,
            "shown_s": first_screen - enter,
            "total_s": (last_screen or first_screen) - enter,
            "tokens": figures.get("completion_tokens", n),
            "chunks": n,
            "prompt_tokens": figures.get("prompt_tokens", 0),
            "cached_tokens": figures.get("cached_tokens", 0),
            "decode_tps": decode,
            "worker_ttft_s": figures.get("time_to_first_token_s"),
            "worker_decode_tps": figures.get("tokens_per_second"),
            "screen_latency": latency,
            "pipe_latency": pipe,
            "screen_updates": len(shown),
            "tokens_missing_on_screen": sum(t is None for t in screen_times),
            "text": "".join(piece for _, piece in sent),
        }

    def memory(self) -> dict[str, int]:
        return self.app.memory()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._browser is not None:
                self._browser.close()
        with contextlib.suppress(Exception):
            if self._playwright is not None:
                self._playwright.stop()
        self.app.stop()

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError(cmd)
