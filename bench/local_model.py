"""The embedded model: llmkit's LlamaCpp vs raw ``llama_cpp.Llama`` on the same model, prompt and settings.

Run: .venv/bin/python -m bench.local_model [--runs 5] [--tokens 64]
Targets: tokens/s >= 0.97x raw (median of runs); time to first token within 5 ms of raw.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel

from llmkit import ChatMessage, LlamaCpp, PromptTemplate, StructuredOutputError

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


def measure(runs: int = 5, tokens: int = 64) -> dict[str, tuple[float, float]]:
    """Median (time to first token in ms, tokens/s) of raw ``llama_cpp`` and llmkit, interleaved runs."""
    settings = {"temperature": 0.0, "top_p": 0.95, "top_k": 40, "repeat_penalty": 1.1}
    llm = LlamaCpp(max_tokens=tokens, **settings)
    raw = llm.model.llama  # the very same llama_cpp.Llama object: same weights, same context
    messages = [ChatMessage(role="user", content=PROMPT)]
    raw_messages: Any = [{"role": "user", "content": PROMPT}]

    def raw_stream() -> Iterator[Any]:
        for chunk in raw.create_chat_completion(raw_messages, stream=True, max_tokens=tokens, **settings):
            if chunk["choices"][0]["delta"].get("content"):
                yield chunk

    def llmkit_stream() -> Iterator[Any]:
        return (c for c in llm.stream_chat(messages) if c.delta)

    results: dict[str, list[tuple[float, float, int]]] = {"raw llama_cpp": [], "llmkit": []}
    timed_stream(raw_stream)  # warm-up
    for _ in range(runs):  # interleaved, so noise hits both alike
        results["raw llama_cpp"].append(timed_stream(raw_stream))
        results["llmkit"].append(timed_stream(llmkit_stream))
    return {
        name: (statistics.median(r[0] for r in done) * 1000, statistics.median(r[1] for r in done))
        for name, done in results.items()
    }


class Reading(BaseModel):
    """A structured-output target with a nested object, a list and an enum."""

    class Place(BaseModel):
        city: str
        country: str

    title: str
    place: Place
    tags: list[str]
    mood: Literal["happy", "sad", "neutral"]


TOPICS = ["a day at the beach", "a rainy morning in Paris", "a lost cat", "a mountain hike", "a busy market",
          "a train journey", "a quiet library", "a football match", "a birthday party", "a thunderstorm"]  # fmt: skip


def validity(prompts: int = 30) -> tuple[int, int]:
    """(valid, total): structured_predict on the embedded model, grammar mode, one schema, varied prompts."""
    llm = LlamaCpp(temperature=0.7, max_tokens=160, seed=11)
    template = PromptTemplate("Describe {topic} as a short reading.")
    valid = 0
    for i in range(prompts):
        topic = TOPICS[i % len(TOPICS)]
        try:
            result = llm.structured_predict(Reading, template, topic=topic)
        except StructuredOutputError:
            continue
        valid += isinstance(result, Reading)
    return valid, prompts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    medians = measure(args.runs, args.tokens)
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
