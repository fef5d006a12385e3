"""Router overhead per call: ``Router`` around one deployment vs the bare LLM, as a share of the raw-client floor's
per-call time (raw httpx against the canned loopback server), all in one interleaved run.

The overhead itself is measured in process (a ``FunctionLLM`` deployment, no I/O), where it is not drowned by the
loopback server's noise; the HTTP rows show the same cases end to end.

Run: .venv/bin/python -m bench.router [--calls 2000] [--rounds 5]
Target: router overhead <= 3% of the floor's per-call time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench._main import run
from bench.canned_server import running
from bench.http import raw_case


def measure(calls: int = 2000, rounds: int = 5) -> dict[str, float]:
    """Median µs per chat call for the floor, the bare llmkit LLM and the routed one."""
    from llmkit import ChatMessage, OpenAILike
    from llmkit.router import Router

    with running() as base:
        messages = [ChatMessage(role="user", content="What is the capital of France?")]
        bare = OpenAILike(model="bench", api_base=base)
        router = Router(groups={"bench": [OpenAILike(model="bench", api_base=base)]})
        cases: dict[str, Callable[[], object]] = {
            "raw httpx": raw_case(base).chat,
            "llmkit": lambda: bare.chat(messages),
            "llmkit Router": lambda: router.chat(messages),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for call in cases.values():
            for _ in range(50):
                call()
        per_round = max(calls // rounds, 1)
        for _ in range(rounds):
            for name, call in cases.items():
                start = time.perf_counter()
                for _ in range(per_round):
                    call()
                samples[name].append((time.perf_counter() - start) / per_round * 1e6)
    result = {name: statistics.median(values) for name, values in samples.items()}
    return {**result, **_in_process(calls, rounds)}


def _in_process(calls: int, rounds: int) -> dict[str, float]:
    from llmkit import ChatMessage
    from llmkit.providers.function import FunctionLLM
    from llmkit.router import Router

    messages = [ChatMessage(role="user", content="x")]
    bare = FunctionLLM(chat_fn=lambda m, k: "ok")
    router = Router(groups={"g": [FunctionLLM(chat_fn=lambda m, k: "ok")]})
    cases: dict[str, Callable[[], object]] = {
        "FunctionLLM (no I/O)": lambda: bare.chat(messages),
        "Router over FunctionLLM (no I/O)": lambda: router.chat(messages),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter()
            for _ in range(calls):
                call()
            samples[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: min(values) for name, values in samples.items()}


def table(result: dict[str, float]) -> str:
    floor = result["raw httpx"]
    overhead = (result["Router over FunctionLLM (no I/O)"] - result["FunctionLLM (no I/O)"]) / floor
    lines = ["| case | chat (µs/call) | ratio to the floor |", "|---|---|---|"]
    lines += [f"| {name} | {us:.0f} | {us / floor:.2f}x |" for name, us in result.items()]
    verdict = "pass" if overhead <= 0.03 else "FAIL"
    lines += ["", f"Router overhead: {overhead * 100:+.1f}% of the floor's per-call time (target <= 3%: {verdict})."]
    return "\n".join(lines)


def main() -> int:
    return run(__doc__, measure, table)


if __name__ == "__main__":
    raise SystemExit(main())
