"""Where a gateway request's CPU goes: the same load against a ladder of ASGI apps, each one layer closer to
``llmkit serve``, served by uvicorn (and granian when it is importable).

Layers (each answers ``POST /v1/chat/completions`` with the canned answer's bytes or the upstream's):

- ``asgi``: a raw ASGI app that reads the body and sends canned bytes: the HTTP server's own cost;
- ``starlette``: the same behind a Starlette route (routing, ``Request``/``Response``, its middleware);
- ``aiohttp``: raw ASGI that posts the body upstream with one ``aiohttp.ClientSession``: the upstream client floor;
- ``llmkit``: raw ASGI over llmkit's core path: ``parse_chat_request``, ``llm.achat`` (llm.py, the provider, the
  wire module, the transport), ``chat_completion_json``;
- ``gateway``: the whole gateway (master key, SQLite store, metrics, usage log), as ``bench.gateway`` runs it.

For each: requests per second at 64 in flight and the server process's CPU per request (its user + system time
over the load, children included: granian serves from a worker process). CPU per request is the figure that
matters on a shared machine; a layer's cost is its difference with the one before.

Run: PYTHONPATH=src:. .bench-venv/bin/python -m bench.gateway_profile [--seconds 5] [--rounds 3]
     [--servers uvicorn,granian] [--layers asgi,starlette,aiohttp,llmkit,gateway]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from bench.canned_server import CHAT, running
from bench.gateway import MASTER, _free_port, _load, _server

LAYERS = ("asgi", "starlette", "aiohttp", "llmkit", "gateway")
LAYER_ENV, UPSTREAM_ENV, CONFIG_ENV = "LLMKIT_BENCH_LAYER", "LLMKIT_BENCH_UPSTREAM", "LLMKIT_GATEWAY_CONFIG"
FALLBACK = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "x"}]})  # GET /v1/models
CANNED = CHAT.split(b"\r\n\r\n", 1)[1]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _read(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _raw(answer: Callable[[bytes], Awaitable[bytes]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        else:
            await _reply(send, await answer(await _read(receive)))

    return app


def layer_app() -> Any:
    """The ASGI app of ``$LLMKIT_BENCH_LAYER`` (a factory, for ``uvicorn --factory`` and ``granian --factory``), in a
    process whose garbage collector is set as ``llmkit serve`` sets it, whatever the layer."""
    from llmkit._process import tune_gc

    app = _layer_app(os.environ[LAYER_ENV], os.environ.get(UPSTREAM_ENV, ""))
    tune_gc()
    return app


def _layer_app(layer: str, upstream: str) -> Any:
    if layer == "asgi":

        async def canned(body: bytes) -> bytes:
            return CANNED

        return _raw(canned)
    if layer == "starlette":
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def endpoint(request: Request) -> Response:
            await request.body()
            return Response(CANNED, media_type="application/json")

        routes = [Route(path, endpoint, methods=["GET", "POST"]) for path in ("/v1/chat/completions", "/v1/models")]
        return Starlette(routes=routes)
    if layer == "aiohttp":
        import aiohttp

        sessions: list[aiohttp.ClientSession] = []

        async def forward(body: bytes) -> bytes:
            if not sessions:
                sessions.append(aiohttp.ClientSession())
            headers = {"content-type": "application/json"}
            async with sessions[0].post(upstream + "/chat/completions", data=body, headers=headers) as reply:
                return await reply.read()

        return _raw(forward)
    if layer == "llmkit":
        from llmkit.registry import create
        from llmkit.wire.openai import chat_completion_json, parse_chat_request

        llm = create("openai-like/bench", api_base=upstream)

        async def answer(body: bytes) -> bytes:
            parsed = parse_chat_request(json.loads(body or FALLBACK))
            response = await llm.achat(parsed.messages, **parsed.call_kwargs())
            return json.dumps(chat_completion_json(response, "bench", "chatcmpl-bench")).encode()

        return _raw(answer)
    if layer == "gateway":
        from llmkit.gateway.app import app_from_env

        return app_from_env()
    raise SystemExit(f"unknown layer {layer!r}: one of {', '.join(LAYERS)}")


def _command(server: str, port: int) -> list[str]:
    target = "bench.gateway_profile:layer_app"
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", target, "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return [sys.executable, "-m", "uvicorn", "--factory", target, "--port", str(port), "--log-level", "warning",
            "--no-access-log", "--no-proxy-headers"]  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    import psutil

    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def servers_available() -> list[str]:
    """uvicorn, and granian when it is installed."""
    return ["uvicorn"] + (["granian"] if importlib.util.find_spec("granian") else [])


def measure(
    seconds: float, servers: list[str], layers: tuple[str, ...] = LAYERS, rounds: int = 1
) -> list[dict[str, Any]]:
    """One row per (layer, server): req/s at 64 in flight and the server's CPU µs per request; over ``rounds``
    interleaved rounds, the best of each (the least disturbed by other work on the machine)."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    with running() as upstream, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "gateway.json"
        config.write_text(json.dumps({
            "models": {"bench": {"model": "openai-like/bench", "api_base": upstream}}, "master_key": MASTER,
            "database_url": f"sqlite:///{tmp}/gateway.sqlite",
        }))  # fmt: skip
        for _ in range(rounds):
            for layer, server in [(layer, server) for layer in layers for server in servers]:
                port = _free_port()
                env = {**os.environ, LAYER_ENV: layer, UPSTREAM_ENV: upstream, CONFIG_ENV: str(config)}
                base = f"http://127.0.0.1:{port}"
                with _server(_command(server, port), base, env) as process:
                    url = base + "/v1/chat/completions"
                    asyncio.run(_load(url, 4, 1.0))  # warm up
                    before = _cpu_seconds(process.pid)
                    rate, latencies = asyncio.run(_load(url, 64, seconds))
                    cpu = (_cpu_seconds(process.pid) - before) / len(latencies) * 1e6
                row = best.setdefault((layer, server), {"layer": layer, "server": server, "req/s": 0.0})
                row["req/s"], row["cpu us/req"] = max(row["req/s"], rate), min(row.get("cpu us/req", cpu), cpu)
    return list(best.values())


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| layer | server | req/s @64 | server CPU µs/request | + over the layer before |",
        "|---|---|---|---|---|",
    ]
    previous: dict[str, float] = {}
    for row in rows:
        cpu = row["cpu us/req"]
        added = cpu - previous[row["server"]] if row["server"] in previous else None
        previous[row["server"]] = cpu
        extra = f"{added:+.0f}" if added is not None else ""
        lines.append(f"| {row['layer']} | {row['server']} | {row['req/s']:.0f} | {cpu:.0f} | {extra} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--servers", default=",".join(servers_available()))
    parser.add_argument("--layers", default=",".join(LAYERS))
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best of each is shown")
    args = parser.parse_args()
    print(table(measure(args.seconds, args.servers.split(","), tuple(args.layers.split(",")), args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
