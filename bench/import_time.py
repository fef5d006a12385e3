"""Import time of llmkit vs the floor it is built on (httpx + pydantic), median of N fresh processes each.

Run: .venv/bin/python -m bench.import_time [--runs 10]
Target: llmkit <= 1.1x ``import httpx; from pydantic import BaseModel``. Also checks that no provider SDK is imported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "llmkit": "import llmkit",
    "httpx + pydantic": "import httpx; from pydantic import BaseModel",
    "llmkit + first use": "import llmkit; llmkit.ChatMessage",
}
TARGET = 1.1


def measure(code: str, runs: int) -> float:
    """Median wall time (ms) of ``python -c code`` in fresh processes, interleaved by the caller."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):  # interleave the cases so machine noise hits them alike
        for name, code in CASES.items():
            results[name].append(measure(code, 1))
    medians = {name: statistics.median(values) for name, values in results.items()}
    floor = medians["httpx + pydantic"]
    print(f"{'case':<22}{'median ms':>10}{'ratio':>8}")
    for name, value in medians.items():
        print(f"{name:<22}{value:>10.1f}{value / floor:>8.2f}x")
    leaked = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, llmkit; print([m for m in ('litellm', 'llama_cpp', 'openai') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ratio = medians["llmkit"] / floor
    ok = ratio <= TARGET and leaked == "[]"
    print(f"import llmkit = {ratio:.2f}x httpx+pydantic (target <= {TARGET}x); provider SDKs imported: {leaked}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
