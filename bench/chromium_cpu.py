"""Where Chromium's CPU goes while LocalChat answers (issue #23): per process type, per phase.

    .venv/bin/python bench/chromium_cpu.py --model starter   # the real numbers (starter model)
    .venv/bin/python bench/chromium_cpu.py --quick           # smoke run on the tiny bench model

Starts the app (`main.py`) with a model and Chromium (Playwright, bench.browser.CHROMIUM_ARGS),
then for each turn measures, per phase:
- streaming: from Enter until the live reply is replaced by the finished message;
- settle: from there until the page is idle (its main thread busy < 2 % for 0.5 s);
- idle: a few seconds with nothing happening;
the CPU seconds of every Chromium process by its type (browser, renderer, gpu, network,
utility: each child's `--type=`), CDP `Performance.getMetrics` deltas per tab (script, layout,
style, task durations and counts), and the visible updates per second while streaming (frames
in which the reply's text changed). Scenarios: one tab; two tabs on the chat (one streaming,
one idle); a tab that goes hidden right after sending (costs of the hidden tab alone).

Headless Chromium never hides a page (minimising its window does not change
`document.visibilityState`), so the hidden tab is emulated in the page: `document.hidden` and
`visibilityState` say hidden and a `visibilitychange` event is sent, which is what the app's
code reacts to; a really hidden tab also gets no animation frames, so it costs less still.
Prints a table and writes JSON (`--out`, default bench/results/chromium_cpu.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from bench.browser import CHROMIUM, CHROMIUM_ARGS, App, BrowserUnavailable
from bench.probe_log import done_event, read_probe
from bench.workload import QUESTIONS, Settings

ROOT = Path(__file__).resolve().parent.parent
METRICS = (
    "TaskDuration",
    "ScriptDuration",
    "LayoutDuration",
    "RecalcStyleDuration",
    "LayoutCount",
    "RecalcStyleCount",
)
PHASES = ("streaming", "settle", "idle")

# Installed before the app's scripts: counts the drawings that changed the live reply's text,
# and lets the probe say the tab is hidden (headless Chromium never hides a page itself).
_PAGE_PROBE = """
(() => {
  const probe = window.__cpuProbe = {frames: 0, first: null, last: null, hidden: false};
  // Read in the observer itself (a microtask after the page's own drawing, same frame): the
  // probe asks for no frames of its own, so it adds no rendering work to what it measures.
  let lastText = null;
  const now = () => performance.timeOrigin + performance.now();
  new MutationObserver(() => {
    const live = document.querySelector('#live_reply .lc-md');
    const text = live ? live.textContent : null;
    if (text && text !== lastText) {
      probe.frames += 1;
      probe.first = probe.first || now();
      probe.last = now();
    }
    lastText = text;
  }).observe(document, {subtree: true, childList: true, characterData: true});
  Object.defineProperty(document, 'hidden', {configurable: true, get: () => probe.hidden});
  Object.defineProperty(document, 'visibilityState', {configurable: true,
    get: () => (probe.hidden ? 'hidden' : 'visible')});
  window.__setHidden = (hidden) => {
    probe.hidden = hidden;
    document.dispatchEvent(new Event('visibilitychange'));
  };
})();
"""

_REPLY_ENDED = """() => { const box = document.querySelector('#message');
  return document.querySelector('#live_reply') === null && box !== null && !box.disabled; }"""


def chromium_processes() -> dict[int, str]:
    """pid -> type of every Chromium process started by this process."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = proc.cmdline()
            if not command or "chrom" not in os.path.basename(command[0]):
                continue
            kind = next((a.split("=", 1)[1] for a in command if a.startswith("--type=")), "browser")
            if kind == "utility":
                sub = next((a for a in command if a.startswith("--utility-sub-type=")), "")
                kind = "network" if "network" in sub.lower() else "utility"
            elif kind == "gpu-process":
                kind = "gpu"
            found[proc.pid] = kind
    return found


def cpu_by_pid() -> dict[int, tuple[str, float]]:
    """pid -> (type, CPU seconds so far) for every Chromium process."""
    out = {}
    for pid, kind in chromium_processes().items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            out[pid] = (kind, times.user + times.system)
    return out


class Tab:
    """One Chromium page on the app, with its CDP session (its main thread's metrics)."""

    def __init__(self, context: Any, url: str, name: str) -> None:
        self.name = name
        self.page = context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.add_init_script(_PAGE_PROBE)
        self.cdp = context.new_cdp_session(self.page)
        self.cdp.send("Performance.enable")
        self.page.goto(url)
        self.page.wait_for_selector("#message")

    def new_chat(self) -> None:
        """A new chat, so that each scenario's turns fit the context."""
        self.page.locator("#new_chat").click()
        self.page.wait_for_function(
            "() => document.querySelectorAll('#conversation .lc-msg').length === 0"
        )
        self.page.wait_for_function(_REPLY_ENDED)

    def metrics(self) -> dict[str, float]:
        got = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        return {name: got.get(name, 0.0) for name in METRICS}

    def probe(self) -> dict[str, Any]:
        return self.page.evaluate("window.__cpuProbe")

    def stats(self) -> dict[str, Any]:
        return self.page.evaluate("(window.LocalChatView && window.LocalChatView.stats) || {}")


class Snapshot:
    """Everything measured at one moment."""

    def __init__(self, tabs: list[Tab]) -> None:
        self.t = time.monotonic()
        self.cpu = cpu_by_pid()
        self.metrics = {tab.name: tab.metrics() for tab in tabs}
        self.load = os.getloadavg()[0]

    def delta(self, later: Snapshot, tabs: list[Tab]) -> dict[str, Any]:
        wall = later.t - self.t
        by_type: dict[str, float] = {}
        for pid, (kind, seconds) in later.cpu.items():
            by_type[kind] = by_type.get(kind, 0.0) + seconds - self.cpu.get(pid, (kind, 0.0))[1]
        per_tab = {}
        for tab in tabs:
            m0, m1 = self.metrics[tab.name], later.metrics[tab.name]
            metrics = {k: m1[k] - m0[k] for k in METRICS}
            # A tab's main thread, busy: TaskDuration per second of the phase.
            per_tab[tab.name] = {
                "metrics": metrics,
                "main_thread_cores": metrics["TaskDuration"] / wall,
            }
        total = sum(by_type.values())
        return {
            "wall_s": wall,
            "cpu_s": by_type,
            "total_cpu_s": total,
            "cores": total / wall if wall else 0.0,
            "tabs": per_tab,
            "load_average": [self.load, later.load],
        }


def wait_page_idle(tab: Tab, limit_s: float = 10.0) -> None:
    """Until the tab's main thread is busy < 2 % for 0.5 s (at most `limit_s`)."""
    deadline = time.monotonic() + limit_s
    quiet = 0
    before = tab.metrics()["TaskDuration"]
    while time.monotonic() < deadline and quiet < 2:
        time.sleep(0.25)
        now = tab.metrics()["TaskDuration"]
        quiet = quiet + 1 if now - before < 0.005 else 0
        before = now


def send(tab: Tab, text: str) -> None:
    try:
        tab.page.wait_for_function(_REPLY_ENDED, timeout=120_000)
    except Exception as exc:
        state = tab.page.evaluate(
            """() => ({live: document.querySelector('#live_reply') !== null,
                       disabled: document.querySelector('#message')?.disabled,
                       end: (document.querySelector('#conversation')?.innerText || '')
                              .slice(-300)})"""
        )
        raise RuntimeError(f"{tab.name}: the previous reply did not end: {state}") from exc
    box = tab.page.locator("#message")
    box.fill(text)
    box.press("Enter")


_FINISHED = """(n) => { const rows = document.querySelectorAll(
    '#conversation .lc-msg-assistant:not(.lc-streaming)');
  const box = document.querySelector('#message');
  return rows.length > n && rows[rows.length - 1].textContent.includes('tokens/s') &&
         document.querySelector('#live_reply') === null && box !== null && !box.disabled; }"""
_ROWS = "() => document.querySelectorAll('#conversation .lc-msg-assistant').length"


class Worker:
    """The app's model worker: its own note that a reply ended (bench/probe)."""

    def __init__(self, app: App, probe_dir: Path) -> None:
        self.pid = app.worker_pid()
        if self.pid is None:
            raise BrowserUnavailable("the app started no model worker (was the model loaded?)")
        self.probe_dir = probe_dir
        self.offsets: dict[int, int] = {}

    def wait_done(self, wait_s: float = 300) -> None:
        events = read_probe(self.probe_dir, self.pid, self.offsets, wait_s=wait_s)
        if done_event(events) is None:
            raise RuntimeError(f"the worker did not end its reply within {wait_s:.0f} s")


def turn(
    worker: Worker, tabs: list[Tab], active: Tab, text: str, idle_s: float, *, hide: bool = False
) -> dict[str, Any]:
    """One reply in `active`, measured per phase over all `tabs`."""
    wait_page_idle(active)
    rows = active.page.evaluate(_ROWS)
    frames_before = active.probe()["frames"]
    active.page.evaluate("window.__cpuProbe.first = window.__cpuProbe.last = null")  # this turn's
    start = Snapshot(tabs)
    send(active, text)
    if hide:
        active.page.evaluate("window.__setHidden(true)")
        time.sleep(0.3)  # what was on its way lands
        stats_before = active.stats()
        hidden_at = Snapshot(tabs)
        worker.wait_done()
        ended = Snapshot(tabs)
        time.sleep(idle_s)
        hidden_end = Snapshot(tabs)
        stats_after = active.stats()
        active.page.evaluate("window.__setHidden(false)")
        active.page.wait_for_function(_FINISHED, arg=rows, timeout=60_000)
        wait_page_idle(active)
        shown = Snapshot(tabs)
        return {
            "hidden_reply": hidden_at.delta(ended, tabs),
            "hidden_idle": ended.delta(hidden_end, tabs),
            "shown_again": hidden_end.delta(shown, tabs),
            "work_while_hidden": {k: stats_after[k] - stats_before.get(k, 0) for k in stats_after},
        }
    worker.wait_done()
    active.page.wait_for_function(_FINISHED, arg=rows, timeout=60_000)
    ended = Snapshot(tabs)
    wait_page_idle(active)
    settled = Snapshot(tabs)
    time.sleep(idle_s)
    idle = Snapshot(tabs)
    probe = active.probe()
    frames = probe["frames"] - frames_before
    span = (probe["last"] - probe["first"]) / 1000 if probe["first"] and probe["last"] else 0
    streaming = start.delta(ended, tabs)
    return {
        "streaming": streaming,
        "settle": ended.delta(settled, tabs),
        "idle": settled.delta(idle, tabs),
        "turn": start.delta(settled, tabs),
        "visible_updates": frames,
        # From the first text on screen to the last live update.
        "visible_updates_per_s": (frames - 1) / span if span > 0 else 0,
        "first_to_last_update_s": span,
        "stats": active.stats(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise BrowserUnavailable(f"no Chromium at {CHROMIUM}")
    model = resolve_model(args)
    # Room for a scenario's turns (a new chat each scenario).
    settings = Settings(model_path=str(model), threads=args.threads, tokens=args.tokens, n_ctx=4096)
    work = Path(tempfile.mkdtemp(prefix="localchat-chromium-cpu-"))
    probe_dir = work / "probe"
    probe_dir.mkdir()
    app = App(settings, work, model=True, probe_dir=probe_dir, name="app")
    result: dict[str, Any] = {
        "model": model.name,
        "tokens": args.tokens,
        "threads": args.threads,
        "load_average_start": list(os.getloadavg()),
        "scenarios": {},
    }
    try:
        app.wait_until_serving(300)
        worker = Worker(app, probe_dir)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                one = Tab(context, app.url, "streaming")
                tabs = [one]
                questions = iter(QUESTIONS * 10)
                one.new_chat()
                one_tab = [
                    turn(worker, tabs, one, next(questions), args.idle) for _ in range(args.reps)
                ]
                result["scenarios"]["one tab"] = one_tab
                one.new_chat()
                other = Tab(context, app.url, "idle tab")
                tabs.append(other)
                one.page.bring_to_front()  # the tab being read; the other waits behind it
                result["scenarios"]["two tabs"] = [
                    turn(worker, tabs, one, next(questions), args.idle) for _ in range(args.reps)
                ]
                other.page.close()
                tabs.remove(other)
                one.new_chat()
                result["scenarios"]["hidden tab"] = [
                    turn(worker, tabs, one, next(questions), args.idle, hide=True)
                    for _ in range(args.reps)
                ]
            finally:
                browser.close()
    finally:
        app.stop()
    result["load_average_end"] = list(os.getloadavg())
    return result


def resolve_model(args: argparse.Namespace) -> Path:
    if args.model == "starter":
        from llm.starter import fetch_starter

        cached = Path.home() / ".cache" / "localchat-tests" / "SmolLM2-135M-Instruct.Q4_1.gguf"
        return cached if cached.is_file() else fetch_starter(ROOT / "bench" / "cache").path
    if args.model:
        return Path(args.model).resolve()
    from bench.model import QUICK, TINYLLAMA, ensure_model

    return ensure_model(QUICK if args.quick else TINYLLAMA, ROOT / "bench" / "cache", args.threads)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summary(result: dict[str, Any]) -> list[str]:
    """Readable lines: medians over the repetitions, with their range."""
    lines = [f"model {result['model']}, {result['tokens']} tokens a reply"]

    def fmt(values: list[float], unit: str = "", scale: float = 1.0) -> str:
        vals = [v * scale for v in values]
        return f"{_median(vals):.3f}{unit} ({min(vals):.3f}–{max(vals):.3f})" if vals else "-"

    for name, reps in result["scenarios"].items():
        phases = (
            ("hidden_reply", "hidden_idle", "shown_again")
            if name == "hidden tab"
            else (
                *PHASES,
                "turn",
            )
        )
        lines.append(f"\n{name} ({len(reps)} repetitions; median (min–max))")
        for phase in phases:
            ds = [r[phase] for r in reps]
            kinds = sorted({k for d in ds for k in d["cpu_s"]})
            per = ", ".join(
                f"{k} {fmt([d['cpu_s'].get(k, 0) / d['wall_s'] for d in ds])}" for k in kinds
            )
            loads = ", ".join(f"{d['load_average'][0]:.1f}" for d in ds)
            lines.append(
                f"  {phase:13} {fmt([d['wall_s'] for d in ds], ' s')}  all Chromium "
                f"{fmt([d['cores'] for d in ds], ' cores')}  [{per}]  load {loads}"
            )
            for tab in ds[0]["tabs"]:
                m = [d["tabs"][tab]["metrics"] for d in ds]
                rc = [d["tabs"][tab]["main_thread_cores"] for d in ds]
                lines.append(
                    f"    {tab:10} main thread {fmt(rc, ' cores')}; ms: task "
                    f"{_median([x['TaskDuration'] for x in m]) * 1000:.0f}, script "
                    f"{_median([x['ScriptDuration'] for x in m]) * 1000:.0f}, layout "
                    f"{_median([x['LayoutDuration'] for x in m]) * 1000:.0f}, style "
                    f"{_median([x['RecalcStyleDuration'] for x in m]) * 1000:.0f}; layouts "
                    f"{_median([x['LayoutCount'] for x in m]):.0f}, style recalcs "
                    f"{_median([x['RecalcStyleCount'] for x in m]):.0f}"
                )
        if name != "hidden tab":
            rates = [r["visible_updates_per_s"] for r in reps]
            lines.append(f"  visible updates/s while streaming {fmt(rates)}")
        else:
            lines.append(
                f"  the page's work while hidden: {[r['work_while_hidden'] for r in reps]}"
            )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="'starter' (SmolLM2-135M), a GGUF file, or the bench model")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, 1 repetition")
    p.add_argument("--tokens", type=int, help="tokens per reply (default 400; --quick 24)")
    p.add_argument("--reps", type=int, help="repetitions per scenario (default 3; --quick 1)")
    p.add_argument("--idle", type=float, help="seconds of the idle phase (default 3; --quick 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/chromium_cpu.json)")
    args = p.parse_args(argv)
    args.tokens = args.tokens or (24 if args.quick else 400)
    args.reps = args.reps or (1 if args.quick else 3)
    args.idle = args.idle if args.idle is not None else (1.0 if args.quick else 3.0)
    default = ROOT / "bench" / ("cache" if args.quick else "results") / "chromium_cpu.json"
    args.out = args.out or default
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    lines = summary(result)
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
