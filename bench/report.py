"""Every benchmark in one run: prints the tables and rewrites ``docs/performance.md``.

Run it through ``python -m bench``, which prepares the comparison environment first; run directly
(``python -m bench.report``) it compares against whatever of openai, litellm and LlamaIndex is importable.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import batch, cache, gateway, gateway_profile, http, local_model, observability, router

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = {
    "llmkit": "import llmkit",
    "httpx + pydantic": "import httpx; from pydantic import BaseModel",
    "openai": "import openai",
    "litellm": "import litellm",
    "llama_index.core.llms": "import llama_index.core.llms",
}
_PROBE = (
    "import time, resource; t = time.perf_counter(); {code}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def import_costs(runs: int) -> dict[str, tuple[float, float]]:
    """Median (import ms, max RSS MB) per module, each run in a fresh interpreter, cases interleaved."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in IMPORTS}
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for _ in range(runs):
        for name, code in IMPORTS.items():
            done = subprocess.run(
                [sys.executable, "-c", _PROBE.format(code=code)], capture_output=True, text=True, env=env
            )
            if done.returncode != 0:
                continue  # not installed here
            seconds, rss_kb = done.stdout.split()[-2:]
            samples[name].append((float(seconds) * 1000, int(rss_kb) / 1024))
    return {
        name: (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
        for name, got in samples.items()
        if got
    }


def versions() -> str:
    code = (
        "import importlib.metadata as m, json; out = {}\n"
        "for p in ('httpx', 'urllib3', 'aiohttp', 'pydantic', 'openai', 'litellm', 'llama-index-core',\n"
        "          'llama-cpp-python'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    found = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    return ", ".join(f"{name} {version}" for name, version in found.items())


def render(
    imports: dict[str, tuple[float, float]],
    results: http.Results,
    local: dict[str, tuple[float, float]],
    valid: tuple[int, int],
    command: str,
    routed: dict[str, float] | None = None,
    cached: dict[str, float] | None = None,
    observed: dict[str, float] | None = None,
    gatewayed: dict[str, dict[str, float]] | None = None,
    batched: tuple[dict[str, float], dict[str, float]] | None = None,
    profiled: list[dict[str, Any]] | None = None,
) -> str:
    floor_ms = imports["httpx + pydantic"][0]
    lines = [
        "# Performance",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()}: {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions()}.",
        "One run, cases interleaved so machine noise hits them alike; every ratio compares cases of that run.",
        "The comparison libraries live in `.bench-venv`, never in llmkit's dependencies.",
        "",
        "## Import — fresh interpreters, median of 10",
        "",
        "| module | import (ms) | ratio to httpx + pydantic | max RSS after import (MB) |",
        "|---|---|---|---|",
    ]
    for name, (ms, rss) in imports.items():
        lines.append(f"| `{name}` | {ms:.1f} | {ms / floor_ms:.2f}x | {rss:.1f} |")
    tps = local["llmkit"][1] / local["raw llama_cpp"][1]
    ttft_gap = local["llmkit"][0] - local["raw llama_cpp"][0]
    lines += [
        "",
        "## Over HTTP — the canned loopback OpenAI server of `bench/canned_server.py`",
        "",
        "Sequential per-call time (median of 5 rounds, 1,000 calls per case), chat and a 16-chunk stream, against",
        "the fastest raw client (urllib3) with raw httpx as a peer; then async throughput (`aiohttp.ClientSession`,",
        "the floor, raw `httpx.AsyncClient` and llmkit `achat`, same pool limits, median of "
        f"{http.ASYNC_ROUNDS} rounds: the floor and",
        "llmkit back to back in alternating order, then raw httpx); then RSS over 10,000 llmkit calls. Ratios are the",
        "median of each round's ratio (a round's cases run back to back, while this machine's speed moves by tens of",
        "percent between rounds).",
        "",
        http.tables(results),
        "",
        *(
            ["## The router — one deployment behind `Router`, same canned server", "", router.table(routed), ""]
            if routed
            else []
        ),
        *(["## The response cache — hits, same canned server", "", cache.table(cached), ""] if cached else []),
        *(
            [
                "## Batch jobs: `llmkit batch`, 3,000 requests at 256 in flight (median of 5 interleaved rounds)",
                "",
                batch.table(*batched),
                "",
            ]
            if batched
            else []
        ),
        *(
            ["## The gateway: `llmkit serve` beside LiteLLM's proxy", "", gateway.table(gatewayed), ""]
            if gatewayed
            else []
        ),
        *(
            [
                "Where a gateway request's CPU goes (`bench/gateway_profile.py`: the server process's CPU per",
                "request at 64 in flight, for ASGI apps one layer closer to the gateway each):",
                "",
                gateway_profile.table(profiled),
                "",
            ]
            if profiled
            else []
        ),
        *(
            [
                "## Usage, cost and tracing — the CostTracker and the OpenTelemetry handler, same canned server",
                "",
                observability.table(observed),
                "",
            ]
            if observed
            else []
        ),
        "## The embedded model — SmolLM2-135M-Instruct Q4_1, same loaded model",
        "",
        "| case | time to first token (ms) | tokens/s |",
        "|---|---|---|",
    ]
    for name, (ttft, speed) in local.items():
        lines.append(f"| {name} | {ttft:.1f} | {speed:.1f} |")
    lines += [
        "",
        f"Tokens/s ratio {tps:.2f}x (target >= 0.97x: {'pass' if tps >= 0.97 else 'FAIL'}); "
        f"time-to-first-token gap {ttft_gap:+.1f} ms.",
        f"Structured output (grammar mode, nested schema with an enum and a list): {valid[0]}/{valid[1]} valid "
        f"(target 100%: {'pass' if valid[0] == valid[1] else 'FAIL'}).",
        "",
        f"Import target `llmkit` <= 1.1x httpx + pydantic: "
        f"{'pass' if imports['llmkit'][0] <= 1.1 * floor_ms else 'FAIL'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--import-runs", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/performance.md alone")
    parser.add_argument("--command", default="python -m bench")
    args = parser.parse_args()
    print("import time ...", flush=True)
    imports = import_costs(args.import_runs)
    print("HTTP ...", flush=True)
    results = http.run(calls=args.calls)
    print("router ...", flush=True)
    routed = router.measure(calls=args.calls)
    print("cache ...", flush=True)
    cached = cache.measure(calls=args.calls)
    print("usage, cost and tracing ...", flush=True)
    observed = observability.measure(calls=args.calls)
    print("batch ...", flush=True)
    batched = batch.in_new_process(3000, 256, rounds=5, memory_lines=200_000)
    print("gateway ...", flush=True)
    gatewayed = gateway.measure(seconds=3.0, rss_requests=20_000)
    profiled = gateway_profile.measure(3.0, gateway_profile.servers_available())
    print("embedded model ...", flush=True)
    local = local_model.measure()
    valid = local_model.validity(args.prompts)
    text = render(imports, results, local, valid, args.command, routed, cached, observed, gatewayed, batched, profiled)
    print(text)
    if not args.no_write:
        (ROOT / "docs" / "performance.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
