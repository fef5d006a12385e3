"""The gateway side by side with LiteLLM's proxy: one worker each, the same canned upstream, aiohttp as the client.

Measured in one run: the upstream directly (the floor), ``llmkit serve`` (uvicorn), the same app under granian
(``granian --interface asgi``, one worker) when granian is importable, and ``litellm --config`` (from
``.bench-venv``, never an llmkit dependency; master key, no database). For each: latency p50/p99 at 1 in flight (the
added latency is the difference with the floor), and throughput at 1, 16 and 64 in flight. Then the gateway's RSS
over ``--rss-requests`` requests.

Run: .venv/bin/python -m bench.gateway [--seconds 5] [--rss-requests 100000]
Targets: p50 added <= 1 ms at 1 in flight; throughput >= 10x LiteLLM's proxy and >= 0.3x the direct upstream at 64
in flight; RSS flat over 100,000 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.canned_server import running

ROOT = Path(__file__).resolve().parents[1]
MASTER = "sk-bench-master"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
CONCURRENCY = (1, 16, 64)
GRANIAN = "llmkit serve (granian)"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(base: str, process: subprocess.Popen[bytes], seconds: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            request = urllib.request.Request(base + "/v1/models", headers={"Authorization": f"Bearer {MASTER}"})
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{process.args} did not start")


@contextmanager
def _server(command: list[str], base: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        _wait(base, process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def llmkit_gateway(upstream: str, folder: Path, server: str = "uvicorn") -> Iterator[tuple[str, int]]:
    """``llmkit serve`` (``server``: uvicorn, or the same app under granian's own command line)."""
    config = {"models": {"bench": {"model": "openai-like/bench", "api_base": upstream}}, "master_key": MASTER,
              "database_url": f"sqlite:///{folder}/gateway-{server}.sqlite"}  # fmt: skip
    path = folder / f"gateway-{server}.json"
    path.write_text(json.dumps(config))
    port = _free_port()
    env = None
    if server == "granian":
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--port", str(port),
                   "--workers", "1", "--loop", "uvloop", "--log-level", "warning"]  # fmt: skip
        command.append("llmkit.gateway.app:app_from_env")
        env = {**os.environ, "LLMKIT_GATEWAY_CONFIG": str(path)}
    else:
        command = [sys.executable, "-m", "llmkit.cli", "serve", "--config", str(path), "--port", str(port)]
        command += ["--log-level", "warning"]
    with _server(command, f"http://127.0.0.1:{port}", env) as process:
        yield f"http://127.0.0.1:{port}", process.pid


@contextmanager
def litellm_proxy(upstream: str, folder: Path) -> Iterator[str | None]:
    binary = ROOT / ".bench-venv" / "bin" / "litellm"
    if not binary.exists():
        yield None
        return
    config = (
        "model_list:\n  - model_name: bench\n    litellm_params:\n"
        f"      model: openai/bench\n      api_base: {upstream}\n      api_key: x\n"
        f"general_settings:\n  master_key: {MASTER}\n"
    )
    path = folder / "litellm.yaml"
    path.write_text(config)
    port = _free_port()
    command = [str(binary), "--config", str(path), "--port", str(port), "--num_workers", "1"]
    env = {**os.environ, "LITELLM_LOG": "ERROR"}
    with _server(command, f"http://127.0.0.1:{port}", env):
        yield f"http://127.0.0.1:{port}"


async def _load(url: str, in_flight: int, seconds: float) -> tuple[float, list[float]]:
    """Requests per second with ``in_flight`` concurrent clients, and every request's latency (s)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
    payload = json.dumps(BODY).encode()
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as reply:
                    await reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"{url}: HTTP {reply.status}")
                latencies.append(time.perf_counter() - start)

        begin = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        elapsed = time.perf_counter() - begin
    return len(latencies) / elapsed, latencies


def _rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def measure(seconds: float = 5.0, rss_requests: int = 20_000) -> dict[str, dict[str, float]]:
    """Per target: p50/p99 at 1 in flight (ms) and req/s at each concurrency; the gateway's RSS before/after."""
    results: dict[str, dict[str, float]] = {}
    with running() as upstream, tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        gateway, pid = stack.enter_context(llmkit_gateway(upstream, folder))
        proxy = stack.enter_context(litellm_proxy(upstream, folder))
        targets = {"direct upstream": upstream, "llmkit serve": gateway + "/v1"}
        if importlib.util.find_spec("granian") is not None:
            targets[GRANIAN] = stack.enter_context(llmkit_gateway(upstream, folder, "granian"))[0] + "/v1"
        if proxy is not None:
            targets["LiteLLM proxy"] = proxy + "/v1"
        for base in targets.values():
            asyncio.run(_load(base + "/chat/completions", 4, 1.0))  # warm up
        for in_flight in CONCURRENCY:  # the targets interleaved, so that the machine's noise hits them alike
            for name, base in targets.items():
                row = results.setdefault(name, {})
                rate, latencies = asyncio.run(_load(base + "/chat/completions", in_flight, seconds))
                row[f"req/s @{in_flight}"] = rate
                if in_flight == 1:
                    ordered = sorted(latencies)
                    row["p50 ms"] = statistics.median(ordered) * 1000
                    row["p99 ms"] = ordered[int(len(ordered) * 0.99)] * 1000
        before = _rss_mb(pid)
        done = 0
        while done < rss_requests:
            rate, latencies = asyncio.run(_load(gateway + "/v1/chat/completions", 64, 5.0))
            done += len(latencies)
        results["llmkit serve RSS"] = {"before MB": before, "after MB": _rss_mb(pid), "requests": done}
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    floor = results["direct upstream"]
    lines = ["| target | p50 ms @1 | p99 ms @1 | " + " | ".join(f"req/s @{c}" for c in CONCURRENCY) + " |"]
    lines.append("|---|---|---|" + "---|" * len(CONCURRENCY))
    for name in ("direct upstream", "llmkit serve", GRANIAN, "LiteLLM proxy"):
        row = results.get(name)
        if row is None:
            continue
        rates = " | ".join(f"{row[f'req/s @{c}']:.0f}" for c in CONCURRENCY)
        lines.append(f"| {name} | {row['p50 ms']:.2f} | {row['p99 ms']:.2f} | {rates} |")
    ours = results["llmkit serve"]
    added = ours["p50 ms"] - floor["p50 ms"]
    share = ours["req/s @64"] / floor["req/s @64"]
    lines += ["", f"Added p50 at 1 in flight: {added:.2f} ms (target <= 1 ms: {'pass' if added <= 1 else 'FAIL'}). "
              f"Throughput at 64 in flight: {share:.2f}x the direct upstream (target >= 0.3x: "
              f"{'pass' if share >= 0.3 else 'FAIL'})."]  # fmt: skip
    granian = results.get(GRANIAN)
    if granian is not None:
        added_g = granian["p50 ms"] - floor["p50 ms"]
        lines.append(f"Under granian: added p50 {added_g:.2f} ms; at 64 in flight "
                     f"{granian['req/s @64'] / floor['req/s @64']:.2f}x the direct upstream, "
                     f"{granian['req/s @64'] / ours['req/s @64']:.2f}x uvicorn.")  # fmt: skip
    else:
        lines.append("granian was not measured: it is not installed (pip install granian).")
    theirs = results.get("LiteLLM proxy")
    if theirs is not None:
        ratio = ours["req/s @64"] / theirs["req/s @64"]
        lines.append(f"Throughput at 64 in flight: {ratio:.1f}x LiteLLM's proxy (target >= 10x: "
                     f"{'pass' if ratio >= 10 else 'FAIL'}).")  # fmt: skip
    else:
        lines.append("LiteLLM's proxy was not measured: build .bench-venv with `python -m bench` first.")
    rss = results["llmkit serve RSS"]
    growth = rss["after MB"] - rss["before MB"]
    lines.append(f"Gateway RSS over {rss['requests']:.0f} requests: {rss['before MB']:.1f} -> {rss['after MB']:.1f} MB "
                 f"({growth:+.1f} MB).")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rss-requests", type=int, default=100_000)
    args = parser.parse_args()
    print(table(measure(args.seconds, args.rss_requests)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
