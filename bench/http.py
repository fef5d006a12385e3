"""Per-call cost over HTTP: llmkit's ``OpenAILike`` vs the fastest raw client of each kind doing the same request
(the floors: urllib3 for blocking calls, aiohttp for async ones), raw httpx as a peer, and, when they are installed,
the OpenAI SDK, LiteLLM and LlamaIndex's ``OpenAILike`` — all against the canned loopback server.

Run: .venv/bin/python -m bench.http [--calls 1000] [--rounds 5]
Targets: chat <= 1.15x raw urllib3; 16-chunk stream <= 1.25x; async throughput at 1, 16, 64 and 256 in flight
>= 0.85x raw ``aiohttp.ClientSession``; RSS growth over 10,000 llmkit calls < 5 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.canned_server import running

PROMPT = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": PROMPT}]


@dataclass
class Case:
    name: str
    chat: Callable[[], object]
    stream: Callable[[], object]
    per_call: dict[str, list[float]] = field(default_factory=lambda: {"chat": [], "stream": []})


def raw_case(base: str) -> Case:
    client = httpx.Client(base_url=base)
    body = {"model": "bench", "messages": MESSAGES}

    def chat() -> object:
        response = client.post("/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    def stream() -> object:
        text = []
        with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    text.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
        return "".join(text)

    return Case("raw httpx", chat, stream)


def raw_urllib3_case(base: str) -> Case:
    import urllib3

    pool = urllib3.PoolManager(maxsize=100)
    url = base + "/chat/completions"
    body = {"model": "bench", "messages": MESSAGES}

    def chat() -> object:
        response = pool.request("POST", url, json=body)
        if response.status >= 300:
            raise RuntimeError(response.status)
        return json.loads(response.data)["choices"][0]["message"]["content"]

    def stream() -> object:
        text = []
        response = pool.request("POST", url, json={**body, "stream": True}, preload_content=False)
        if response.status >= 300:
            raise RuntimeError(response.status)
        for line in response:
            if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                text.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
        response.release_conn()
        return "".join(text)

    return Case("raw urllib3", chat, stream)


def llmkit_case(base: str) -> Case:
    from llmkit import ChatMessage, OpenAILike

    llm = OpenAILike(model="bench", api_base=base)
    messages = [ChatMessage(role="user", content=PROMPT)]
    return Case("llmkit", lambda: llm.chat(messages).content, lambda: list(llm.stream_chat(messages)))


def openai_case(base: str) -> Case:
    import openai

    client = openai.OpenAI(base_url=base, api_key="bench", max_retries=0)

    def chat() -> object:
        return client.chat.completions.create(model="bench", messages=MESSAGES).choices[0].message.content  # type: ignore[arg-type]

    def stream() -> object:
        return list(client.chat.completions.create(model="bench", messages=MESSAGES, stream=True))  # type: ignore[arg-type]

    return Case("openai SDK", chat, stream)


def litellm_case(base: str) -> Case:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    common: dict[str, Any] = {"model": "openai/bench", "api_base": base, "api_key": "bench", "messages": MESSAGES}
    return Case(
        "LiteLLM",
        lambda: litellm.completion(**common).choices[0].message.content,
        lambda: list(litellm.completion(stream=True, **common)),
    )


def llama_index_case(base: str) -> Case:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="bench", api_base=base, api_key="bench", is_chat_model=True, max_retries=0)
    messages = [ChatMessage(role="user", content=PROMPT)]
    return Case("LlamaIndex", lambda: llm.chat(messages).message.content, lambda: list(llm.stream_chat(messages)))


OPTIONAL = {"openai": openai_case, "litellm": litellm_case, "llama_index.llms.openai_like": llama_index_case}


def available_cases(base: str) -> list[Case]:
    cases = [raw_urllib3_case(base), raw_case(base), llmkit_case(base)]
    for module, make in OPTIONAL.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if present:
            cases.append(make(base))
    return cases


def measure_sequential(cases: list[Case], calls: int, rounds: int) -> None:
    """Interleaved rounds, so machine noise hits every case alike; each round's mean per-call time is recorded."""
    per_round = max(calls // rounds, 1)
    for case in cases:  # warm-up: connections, imports, caches
        for _ in range(20):
            case.chat()
            case.stream()
    for _ in range(rounds):
        for case in cases:
            for kind in ("chat", "stream"):
                call = getattr(case, kind)
                gc.collect()  # as in measure_async: no case pays for the garbage of the one before it
                start = time.perf_counter()
                for _ in range(per_round):
                    call()
                case.per_call[kind].append((time.perf_counter() - start) / per_round)


async def _throughput(call: Callable[[], Awaitable[object]], in_flight: int, total: int) -> float:
    gate = asyncio.Semaphore(in_flight)

    async def one() -> None:
        async with gate:
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - start)


def measure_async(base: str, levels: tuple[int, ...], rounds: int) -> dict[int, dict[str, float]]:
    """Requests per second of raw ``aiohttp.ClientSession`` (the floor), raw ``httpx.AsyncClient`` and llmkit
    ``achat`` (its default pool), at each level of concurrency; cases interleaved, median of ``rounds``. The ratio
    (key ``"ratio"``) is the median of each round's llmkit / aiohttp, measured in adjacent windows: a window and the
    next one see much the same machine, while rounds apart moved by tens of percent here."""
    import aiohttp

    from llmkit import ChatMessage, OpenAILike

    body = {"model": "bench", "messages": MESSAGES}
    messages = [ChatMessage(role="user", content=PROMPT)]
    url = base + "/chat/completions"

    async def run() -> dict[int, dict[str, float]]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=256)
        client = httpx.AsyncClient(base_url=base, limits=limits)
        llm = OpenAILike(model="bench", api_base=base)

        async def raw_aiohttp() -> object:
            async with session.post(url, json=body) as response:
                response.raise_for_status()
                return (await response.json())["choices"][0]["message"]["content"]

        async def raw_httpx() -> object:
            response = await client.post("/chat/completions", json=body)
            response.raise_for_status()
            return response.json()["choices"][0]["message"]["content"]

        async def ours() -> object:
            return (await llm.achat(messages)).content

        pair = [("raw aiohttp", raw_aiohttp), ("llmkit", ours)]
        results: dict[int, dict[str, float]] = {}
        for level in levels:
            # ~0.15-0.6 s per window for aiohttp and llmkit: 400 requests (~0.1 s) moved by ±40% between rounds here
            total = max(1500, level * 8)
            for _, call in [*pair, ("raw httpx", raw_httpx)]:  # warm the pools to this size
                await _throughput(call, level, level)
            rates: dict[str, list[float]] = {"raw aiohttp": [], "raw httpx": [], "llmkit": []}
            for round_ in range(rounds):
                # The floor and llmkit back to back, first one then the other (a drift of the machine's speed within
                # a round favours neither); the peer after them, in a shorter window (at a few hundred requests a
                # second its windows took seconds, and in between them the pair saw different machines).
                for name, call in pair if round_ % 2 == 0 else pair[::-1]:
                    gc.collect()  # each window pays for its own garbage, not for the case before it
                    rates[name].append(await _throughput(call, level, total))
                gc.collect()
                rates["raw httpx"].append(await _throughput(raw_httpx, level, max(300, level * 2)))
            results[level] = {name: statistics.median(got) for name, got in rates.items()}
            paired = [ours / floor for ours, floor in zip(rates["llmkit"], rates["raw aiohttp"], strict=True)]
            results[level]["ratio"] = statistics.median(paired)
            if level == SDK_LEVEL:
                results[level].update(await _against_the_sdk(base, ours, level))
        await session.close()
        await client.aclose()
        await llm.aclose()
        return results

    return asyncio.run(run())


#: Rounds of the async comparison (each: the floor and llmkit back to back, then raw httpx). One round's ratio
#: spreads widely on this VM (at 64 in flight, 21 rounds of one run: 0.67 to 1.19, the middle half 0.85 to 0.97,
#: with no pattern by which client went first), so the median needs many of them to move by less than the margins
#: it is held to.
ASYNC_ROUNDS = 21

#: The level of the target against the OpenAI SDK's default client (httpx), which is measured there only: at a few
#: hundred requests a second its windows take seconds.
SDK_LEVEL = 64

#: Rounds of that comparison: fewer than the floor's, its ratio sits several times over its target.
SDK_ROUNDS = 5


async def _against_the_sdk(base: str, ours: Callable[[], Awaitable[object]], level: int) -> dict[str, float]:
    """``AsyncOpenAI``'s requests per second and llmkit's over it (median of each round's ratio), when installed."""
    try:
        from openai import AsyncOpenAI
    except ModuleNotFoundError:
        return {}
    sdk = AsyncOpenAI(base_url=base, api_key="bench", max_retries=0)

    async def openai_sdk() -> object:
        return (await sdk.chat.completions.create(model="bench", messages=MESSAGES)).choices[0].message.content

    await _throughput(openai_sdk, level, level)
    theirs, mine = [], []
    for _ in range(SDK_ROUNDS):
        gc.collect()
        theirs.append(await _throughput(openai_sdk, level, 600))
        gc.collect()
        mine.append(await _throughput(ours, level, 1500))
    await sdk.close()
    return {
        "openai SDK": statistics.median(theirs),
        "sdk ratio": statistics.median(m / t for m, t in zip(mine, theirs, strict=True)),
    }


def rss_growth(base: str, calls: int) -> float:
    """MB of RSS gained over ``calls`` llmkit chat calls, after a 1,000-call warm-up."""
    import psutil

    from llmkit import ChatMessage, OpenAILike

    llm = OpenAILike(model="bench", api_base=base)
    messages = [ChatMessage(role="user", content=PROMPT)]
    for _ in range(1000):
        llm.chat(messages)
    gc.collect()
    before = psutil.Process().memory_info().rss
    for _ in range(calls):
        llm.chat(messages)
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / 1e6


@dataclass
class Results:
    sequential: list[tuple[str, float, float]]  # name, chat us, stream us (medians of the rounds)
    async_rates: dict[int, dict[str, float]]
    rss_mb: float
    #: name -> (chat, stream): the median of each round's ratio to the floor (a round's cases ran back to back)
    ratios: dict[str, tuple[float, float]] = field(default_factory=dict)


def run(
    calls: int = 1000, rounds: int = 5, levels: tuple[int, ...] = (1, 16, 64, 256), rss_calls: int = 10_000
) -> Results:
    with running() as base:
        cases = available_cases(base)
        measure_sequential(cases, calls, rounds)
        sequential = [
            (c.name, statistics.median(c.per_call["chat"]) * 1e6, statistics.median(c.per_call["stream"]) * 1e6)
            for c in cases
        ]
        ratios = {c.name: (_paired(c, cases[0], "chat"), _paired(c, cases[0], "stream")) for c in cases}
        async_rates = measure_async(base, levels, rounds=ASYNC_ROUNDS)
        rss = rss_growth(base, rss_calls)
    return Results(sequential, async_rates, rss, ratios)


def _paired(case: Case, floor: Case, kind: str) -> float:
    """The median of the rounds' ratios of ``case`` to ``floor``."""
    return statistics.median(mine / raw for mine, raw in zip(case.per_call[kind], floor.per_call[kind], strict=True))


def tables(results: Results) -> str:
    """Markdown tables with ratios to the floors (raw urllib3, raw aiohttp) and the verdict for each target."""
    raw_chat, raw_stream = results.sequential[0][1], results.sequential[0][2]
    floor = results.sequential[0][0]
    lines = [
        f"| client | chat (µs/call) | ratio to {floor} (median of the rounds' ratios) | stream, 16 chunks (µs/call) "
        "| ratio |",
        "|---|---|---|---|---|",
    ]
    for name, chat, stream in results.sequential:
        chat_x, stream_x = results.ratios.get(name, (chat / raw_chat, stream / raw_stream))
        lines.append(f"| {name} | {chat:.0f} | {chat_x:.2f}x | {stream:.0f} | {stream_x:.2f}x |")
    chat_ratio, stream_ratio = results.ratios["llmkit"]
    lines += [
        "",
        "| in flight | raw aiohttp (req/s) | raw httpx (req/s) | llmkit achat (req/s) | llmkit / aiohttp "
        "(median of the rounds' ratios) |",
        "|---|---|---|---|---|",
    ]
    for level, rates in results.async_rates.items():
        aio, hx, mine = rates["raw aiohttp"], rates["raw httpx"], rates["llmkit"]
        lines.append(f"| {level} | {aio:.0f} | {hx:.0f} | {mine:.0f} | {rates['ratio']:.2f}x |")
    async_ratio = min((r["ratio"] for r in results.async_rates.values()), default=float("nan"))
    sdk = results.async_rates.get(SDK_LEVEL, {})
    if "openai SDK" in sdk:
        lines += [
            "",
            f"At {SDK_LEVEL} in flight the OpenAI SDK's default client (`AsyncOpenAI`, httpx) answered "
            f"{sdk['openai SDK']:.0f} req/s; llmkit achat {sdk['sdk ratio']:.1f}x that (median of the rounds' ratios).",
        ]
    verdicts = [
        (f"chat <= 1.15x {floor}", chat_ratio, chat_ratio <= 1.15),
        (f"stream <= 1.25x {floor}", stream_ratio, stream_ratio <= 1.25),
        ("async, every level in flight >= 0.85x raw aiohttp (lowest)", async_ratio, async_ratio >= 0.85),
        ("RSS growth over 10,000 calls < 5 MB", results.rss_mb, results.rss_mb < 5),
    ]
    if "sdk ratio" in sdk:
        sdk_ratio = sdk["sdk ratio"]
        verdicts.insert(3, (f"async at {SDK_LEVEL} in flight >= 5x the OpenAI SDK", sdk_ratio, sdk_ratio >= 5))
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for label, value, ok in verdicts:
        lines.append(f"| {label} | {value:.2f} | {'pass' if ok else 'FAIL'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rss-calls", type=int, default=10_000)
    args = parser.parse_args()
    results = run(args.calls, args.rounds, rss_calls=args.rss_calls)
    print(tables(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
