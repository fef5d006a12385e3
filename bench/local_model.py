"""The embedded model: llmkit's LlamaCpp vs raw ``llama_cpp.Llama`` on the same model, prompt and settings.

Run: .venv/bin/python -m bench.local_model [--runs 5] [--tokens 64]
Targets: tokens/s >= 0.97x raw (median of runs); time to first token within 5 ms of raw.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from llmkit import ChatMessage, LlamaCpp

PROMPT = "Write a short story about a lighthouse keeper."


def timed_stream(make: Callable[[], Iterator[Any]]) -> tuple[float, float, int]:
    """(time to first token, tokens per second after it, token count) of one streamed generation."""
    start = time.perf_counter()
    first = 0.0
    count = 0
    for _ in make():
        if count == 0:
            first = time.perf_counter() - start
        count += 1
    total = time.perf_counter() - start
    return first, (count - 1) / max(total - first, 1e-9), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    settings = {"temperature": 0.0, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}
    llm = LlamaCpp(max_tokens=args.tokens, **settings)
    raw = llm.model.llama  # the very same llama_cpp.Llama object: same weights, same context
    messages = [ChatMessage(role="user", content=PROMPT)]
    raw_messages: Any = [{"role": "user", "content": PROMPT}]

    def raw_stream() -> Iterator[Any]:
        for chunk in raw.create_chat_completion(raw_messages, stream=True, max_tokens=args.tokens, **settings):
            if chunk["choices"][0]["delta"].get("content"):
                yield chunk

    def llmkit_stream() -> Iterator[Any]:
        return (c for c in llm.stream_chat(messages) if c.delta)

    results: dict[str, list[tuple[float, float, int]]] = {"raw llama_cpp": [], "llmkit": []}
    timed_stream(raw_stream)  # warm-up
    for _ in range(args.runs):  # interleaved, so noise hits both alike
        results["raw llama_cpp"].append(timed_stream(raw_stream))
        results["llmkit"].append(timed_stream(llmkit_stream))
    medians = {
        name: (statistics.median(r[0] for r in runs) * 1000, statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }
    print(f"{'case':<16}{'TTFT ms':>10}{'tokens/s':>10}")
    for name, (ttft, tps) in medians.items():
        print(f"{name:<16}{ttft:>10.1f}{tps:>10.1f}")
    speed = medians["llmkit"][1] / medians["raw llama_cpp"][1]
    ttft_gap = medians["llmkit"][0] - medians["raw llama_cpp"][0]
    ok = speed >= 0.97 and ttft_gap <= 5.0
    print(f"tokens/s ratio {speed:.3f}x (target >= 0.97x); TTFT gap {ttft_gap:+.1f} ms (target <= 5 ms)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
