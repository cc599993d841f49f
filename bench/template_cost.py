"""What rendering a model file's own chat template in its helper process adds to a turn.

A template from a GGUF file renders in `llm.template_sandbox`'s helper process (limits on time
and memory); LocalChat's built-in templates render in-process. Before the first token of each
turn the worker renders the prompt as many times as trimming asks (`llm.history`): this counts
those renders for the bench's 10-turn conversation, times one render of the same template both
ways, side by side, and reports what the helper adds per turn (target: under 20 ms).

    .venv/bin/python bench/template_cost.py [--reps 200]

No model is needed: token counts come from the prompt's length (4 characters a token), which
only decides how often trimming renders, not what a render costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workload import QUESTIONS, SYSTEM_PROMPT  # noqa: E402
from llm import template_sandbox  # noqa: E402
from llm.history import trim_history  # noqa: E402
from llm.prompts import FORMATS, format_from_gguf, render_prompt  # noqa: E402

TARGET_MS = 20.0
REPLY = " ".join(["word"] * 64)  # a reply of the bench's length
BUDGET_TOKENS = 2048 - 64


def _turn_messages(turn: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for question in QUESTIONS[:turn]:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": REPLY}]
    return [*messages, {"role": "user", "content": QUESTIONS[turn]}]


def _renders_per_turn(fmt: object) -> list[int]:
    counts = []
    for turn in range(len(QUESTIONS)):
        calls = 0

        def count(kept: list[dict[str, str]]) -> int:
            nonlocal calls
            calls += 1
            return len(render_prompt(fmt, kept).text) // 4

        trim_history(_turn_messages(turn), count, BUDGET_TOKENS)
        counts.append(calls)
    return counts


def _median_ms(fmt: object, messages: list[dict[str, str]], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        render_prompt(fmt, messages)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="renders timed per way and turn")
    args = parser.parse_args()
    trusted = FORMATS["chatml"]
    # The same template as it would come from a file that is not byte-equal to a built-in.
    untrusted = format_from_gguf(trusted.template + "{# from a model file #}", "<s>", "<|im_end|>")
    assert untrusted.untrusted and not trusted.untrusted
    started = time.perf_counter()
    template_sandbox.warm()
    render_prompt(untrusted, _turn_messages(0))
    start_ms = (time.perf_counter() - started) * 1000
    renders = _renders_per_turn(trusted)
    rows = []
    for turn in (0, 4, 9):
        messages = _turn_messages(turn)
        # Side by side: the two ways alternate, several rounds each.
        here, helper = [], []
        for _ in range(5):
            here.append(_median_ms(trusted, messages, args.reps // 5))
            helper.append(_median_ms(untrusted, messages, args.reps // 5))
        per_render = statistics.median(helper) - statistics.median(here)
        rows.append(
            {
                "turn": turn + 1,
                "prompt_chars": len(render_prompt(trusted, messages).text),
                "render_in_process_ms": round(statistics.median(here), 3),
                "render_in_helper_ms": round(statistics.median(helper), 3),
                "renders_before_first_token": renders[turn],
                "added_per_turn_ms": round(per_render * renders[turn], 3),
            }
        )
    worst = max(row["added_per_turn_ms"] for row in rows)
    result = {
        "helper_start_ms": round(start_ms, 1),
        "turns": rows,
        "target_ms": TARGET_MS,
        "worst_added_per_turn_ms": worst,
        "pass": worst < TARGET_MS,
    }
    print(f"helper process start (once per process, at model load): {start_ms:.0f} ms")
    print("turn  prompt chars  in-process ms  helper ms  renders  added per turn ms")
    for row in rows:
        print(
            f"{row['turn']:>4}  {row['prompt_chars']:>12}  {row['render_in_process_ms']:>13.3f}"
            f"  {row['render_in_helper_ms']:>9.3f}  {row['renders_before_first_token']:>7}"
            f"  {row['added_per_turn_ms']:>17.3f}"
        )
    verdict = "PASS" if result["pass"] else "MISS"
    print(f"added to the first token: at most {worst:.2f} ms (target < {TARGET_MS:g}): {verdict}")
    out = ROOT / "bench" / "results" / "template_cost.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    template_sandbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
