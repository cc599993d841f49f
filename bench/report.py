"""Turning raw measurements into the summary: medians and spreads, ratios to raw, the issue's
targets (PASS/MISS), the machine description, the terminal table and the Markdown table."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PATH_TITLES = {
    "raw": "raw llama-cpp-python",
    "engine": "llm/ engine",
    "browser": "web app (Chromium)",
    "seed": "seed: LlamaCpp defaults",
}
PATH_ORDER = ["raw", "engine", "browser", "seed"]


# statistics -----------------------------------------------------------------------------
def stat(values: list[float]) -> dict[str, Any] | None:
    """Median and spread (min, max) of `values`; None when there are none."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_stats(values_s: list[float]) -> dict[str, Any] | None:
    """p50/p95/max of latencies given in seconds, reported in milliseconds."""
    if not values_s:
        return None
    ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "max_ms": max(ms),
        "n": len(ms),
    }


def median_of(s: dict[str, Any] | None) -> float | None:
    return s["median"] if s else None


# summary --------------------------------------------------------------------------------
def summarize_path(name: str, turns: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Summary of one path from its results, `turns[rep][turn]`."""
    flat = [r for rep in turns for r in rep]
    first = [rep[0] for rep in turns if rep]
    last = [rep[-1] for rep in turns if rep]
    n_turns = min((len(rep) for rep in turns), default=0)

    def evaluated(r: dict[str, Any]) -> int:
        return r["prompt_tokens"] - r["cached_tokens"]

    out: dict[str, Any] = {
        "turns": n_turns,
        "decode_tps": stat([r["decode_tps"] for r in flat if r.get("decode_tps")]),
        "ttft_first_s": stat([r["ttft_s"] for r in first]),
        "ttft_last_s": stat([r["ttft_s"] for r in last]),
        "prompt_tokens_first": stat([r["prompt_tokens"] for r in first]),
        "evaluated_first": stat([evaluated(r) for r in first]),
        "prompt_tokens_last": stat([r["prompt_tokens"] for r in last]),
        "evaluated_last": stat([evaluated(r) for r in last]),
        "prompt_tps_first": stat([evaluated(r) / r["ttft_s"] for r in first if r["ttft_s"] > 0]),
        "tokens_per_reply": stat([r["tokens"] for r in flat]),
        # What a user waits for before reading: raw, engine and browser stream; seed does not.
        "shown_first_s": stat([r.get("shown_s", r["ttft_s"]) for r in first]),
        "shown_last_s": stat([r.get("shown_s", r["ttft_s"]) for r in last]),
    }
    t1, tn = median_of(out["ttft_first_s"]), median_of(out["ttft_last_s"])
    out["ttft_growth"] = tn / t1 if t1 and tn else None
    if name in ("engine", "browser"):
        out["worker_ttft_first_s"] = stat([r.get("worker_ttft_s") for r in first])
        out["worker_decode_tps"] = stat([r.get("worker_decode_tps") for r in flat])
    if name == "engine":
        out["pipe_latency"] = latency_stats([x for r in flat for x in r.get("pipe_latency", [])])
    if name == "browser":
        out["token_to_screen"] = latency_stats(
            [x for r in flat for x in r.get("screen_latency", [])]
        )
        out["token_to_app"] = latency_stats([x for r in flat for x in r.get("pipe_latency", [])])
        # CPU seconds per second of reply, by process: who competes with llama.cpp's threads.
        out["cpu_cores_busy"] = {
            group: statistics.median(
                r["cpu_s"][group] / r["total_s"] for r in flat if r.get("total_s")
            )
            for group in (flat[0].get("cpu_s") or {} if flat else {})
        }
        # Chromium over a whole turn (Enter until its page is idle), median per repetition.
        per_rep = [
            statistics.median(r["chromium_turn_cores"] for r in rep if "chromium_turn_cores" in r)
            for rep in turns
            if any("chromium_turn_cores" in r for r in rep)
        ]
        out["chromium_turn_cores"] = stat(per_rep)
    return out


def targets(summary: dict[str, Any], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured value and PASS / MISS / n/a."""
    paths = summary
    raw = paths.get("raw", {})
    rows: list[dict[str, Any]] = []

    def add(name: str, limit: str, value: float | None, ok: bool | None, shown: str) -> None:
        status = "n/a" if value is None or ok is None else ("PASS" if ok else "MISS")
        rows.append(
            {"target": name, "limit": limit, "value": value, "shown": shown, "status": status}
        )

    def ratio(path: str, key: str) -> float | None:
        a, b = median_of(paths.get(path, {}).get(key)), median_of(raw.get(key))
        return a / b if a and b else None

    r = ratio("engine", "decode_tps")
    add("engine decode tokens/s vs raw", ">= 0.97x", r, r and r >= 0.97, f"{r:.3f}x" if r else "-")
    r = ratio("browser", "decode_tps")
    add("browser decode tokens/s vs raw", ">= 0.95x", r, r and r >= 0.95, f"{r:.3f}x" if r else "-")
    for path in ("engine", "browser"):
        g = paths.get(path, {}).get("ttft_growth")
        turns = paths.get(path, {}).get("turns", "N")
        add(
            f"{path} first token, turn {turns} vs turn 1",
            "<= 1.5x",
            g,
            g is not None and g <= 1.5,
            f"{g:.2f}x" if g else "-",
        )
    cores = median_of(paths.get("browser", {}).get("chromium_turn_cores"))
    add(
        "Chromium CPU during a reply (Enter to idle)",
        "<= 0.1 core",
        cores,
        cores is not None and cores <= 0.1,
        f"{cores:.3f} core" if cores is not None else "-",
    )
    lat = paths.get("browser", {}).get("token_to_screen")
    p95 = lat["p95_ms"] if lat else None
    add("token to screen p95", "<= 150 ms", p95, p95 is not None and p95 <= 150, _ms(p95))
    shown = median_of(paths.get("browser", {}).get("ttft_first_s"))
    floor = median_of(raw.get("ttft_first_s"))
    extra_s = shown - floor if shown is not None and floor is not None else None
    add(
        "first text on screen vs raw first token (turn 1)",
        "<= +300 ms",
        extra_s,
        extra_s is not None and extra_s <= 0.3,
        f"+{extra_s * 1000:.0f} ms" if extra_s is not None else "-",
    )
    mem = extra.get("memory_mb", {})
    above = None
    if "browser" in mem and "raw" in mem:
        above = mem["browser"]["total"] - mem["raw"]["total"]
    add(
        "app + worker memory above raw",
        "<= 300 MB",
        above,
        above is not None and above <= 300,
        f"{above:+.0f} MB" if above is not None else "-",
    )
    start = median_of(extra.get("startup_s"))
    add(
        "start-up to a served page",
        "<= 5 s",
        start,
        start is not None and start <= 5,
        f"{start:.2f} s" if start is not None else "-",
    )
    return rows


# formatting -----------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _spread(s: dict[str, Any] | None, fmt: str, unit: str = "") -> str:
    if not s:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{s['median']:{fmt}}{unit}"
    return f"{s['median']:{fmt}}{unit} ({s['min']:{fmt}}–{s['max']:{fmt}})"


def _with_ratio(
    s: dict[str, Any] | None, raw: dict[str, Any] | None, fmt: str, unit: str = ""
) -> str:
    text = _spread(s, fmt, unit)
    if s and raw and raw["median"]:
        text += f" ×{s['median'] / raw['median']:.2f}"
    return text


def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table (shared by the terminal and Markdown outputs)."""
    summary = result["summary"]
    paths = [p for p in PATH_ORDER if p in summary]
    raw = summary.get("raw", {})
    turns = result["settings"]["turns"]
    header = ["", *(PATH_TITLES[p] for p in paths)]
    rows: list[list[str]] = []

    def row(label: str, fn: Any) -> None:
        rows.append([label, *(fn(p, summary[p]) for p in paths)])

    row(
        "decode tokens/s (× raw)",
        lambda p, s: _with_ratio(s["decode_tps"], raw.get("decode_tps"), ".1f"),
    )
    row(
        "prompt tokens/s, turn 1",
        lambda p, s: "-" if p == "browser" else _spread(s["prompt_tps_first"], ".0f"),
    )
    row(
        "first token, turn 1 (s)",
        lambda p, s: _with_ratio(s["ttft_first_s"], raw.get("ttft_first_s"), ".2f"),
    )
    row(
        f"first token, turn {turns} (s)",
        lambda p, s: _with_ratio(s["ttft_last_s"], raw.get("ttft_last_s"), ".2f"),
    )
    row(
        f"turn {turns} / turn 1",
        lambda p, s: f"{s['ttft_growth']:.2f}×" if s.get("ttft_growth") else "-",
    )
    row(
        f"prompt tokens evaluated, turn {turns}",
        lambda p, s: (
            "-"
            if not s["evaluated_last"]
            else f"{s['evaluated_last']['median']:.0f} of {s['prompt_tokens_last']['median']:.0f}"
        ),
    )
    row("answer shown, turn 1 (s)", lambda p, s: _spread(s["shown_first_s"], ".2f"))
    row(f"answer shown, turn {turns} (s)", lambda p, s: _spread(s["shown_last_s"], ".2f"))

    def latency(p: str, s: dict[str, Any]) -> str:
        lat = s.get("token_to_screen") if p == "browser" else s.get("pipe_latency")
        if not lat:
            return "-"
        where = "screen" if p == "browser" else "caller"
        return f"{lat['p50_ms']:.0f} / {lat['p95_ms']:.0f} ms ({where})"

    row("token → screen/caller p50 / p95", latency)
    memory = result.get("memory_mb", {})

    def mem(p: str, s: dict[str, Any]) -> str:
        m = memory.get(p)
        if not m:
            return "-"
        if "worker" in m:
            return f"{m['total']:.0f} MB ({m['process']:.0f} + worker {m['worker']:.0f})"
        return f"{m['total']:.0f} MB"

    def cpu(p: str, s: dict[str, Any]) -> str:
        busy = s.get("cpu_cores_busy")
        if not busy:
            return "-"
        return ", ".join(f"{k} {v:.2f}" for k, v in busy.items())

    if "browser" in paths:
        row("CPU cores busy during a reply", cpu)
        row(
            "Chromium cores, Enter to idle (per repetition)",
            lambda p, s: _spread(s.get("chromium_turn_cores"), ".3f") if p == "browser" else "-",
        )
    row("resident memory", mem)
    startup = result.get("startup_s")
    row(
        "start-up to served page",
        lambda p, s: _spread(startup, ".2f", " s") if p == "browser" else "-",
    )
    return header, rows


def terminal_table(result: dict[str, Any]) -> str:
    header, rows = table_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("")
    for t in result["targets"]:
        lines.append(f"{t['status']:5} {t['target']}: {t['shown']} (target {t['limit']})")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    header, rows = table_rows(result)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out.append("")
    out.append("| target | limit | measured | |")
    out.append("|---|---|---|---|")
    out += [
        f"| {t['target']} | {t['limit']} | {t['shown']} | {t['status']} |"
        for t in result["targets"]
    ]
    m = result["machine"]
    s = result["settings"]
    out.append("")
    out.append(
        f"Measured {result['finished_at']} on {m['cpu']} ({m['physical_cores']} cores, "
        f"{m['ram_gb']:.0f} GB RAM), {m['os']}; Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        + f". Model: {result['model']['file']} ({result['model']['size_mb']:.0f} MB), "
        f"{s['threads']} threads, {s['tokens']} tokens per reply, {s['turns']} turns, "
        f"{s['repetitions']} repetition{'s' if s['repetitions'] != 1 else ''} "
        "(median, range in brackets)."
    )
    if result.get("warnings"):
        out.append("")
        out += [f"Note: {w}" for w in result["warnings"]]
    return "\n".join(out) + "\n"


# machine --------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import psutil

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in (
        "llama_cpp_python",
        "langchain-community",
        "langchain-core",
        "taipy-gui",
        "playwright",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": cpu,
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "ram_gb": psutil.virtual_memory().total / 2**30,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "load_average_start": os.getloadavg(),
    }
