"""``llmkit serve`` as users run it: worker processes sharing one rpm through a real redis-server, and a graceful
shutdown that lets in-flight streams finish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port
from tests.gateway.conftest import MASTER, admin
from tests.servers.deployment import DeploymentServer


@contextmanager
def llmkit_serve(
    config: dict[str, Any], tmp_path: Path, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config))
    port = free_port()
    command = [sys.executable, "-m", "llmkit.cli", "serve", "--config", str(path), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"llmkit serve did not start: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.1)
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


async def _burst(base: str, secret: str, count: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as client:
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
        replies = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(count)))
    return [reply.status_code for reply in replies]


def test_three_workers_hold_one_global_rpm(redis_url: str, tmp_path: Path) -> None:
    window = 4.0
    config = {
        "models": {"echo": {"model": "mock"}},
        "master_key": MASTER,
        "database_url": f"sqlite:///{tmp_path}/fleet.sqlite",
        "redis_url": redis_url,
        "rate_window_seconds": window,
    }
    with llmkit_serve(config, tmp_path, workers=3) as (base, process):
        secret = admin(base, "POST", "/admin/keys", json={"name": "fleet", "rpm": 40}).json()["key"]
        time.sleep(window - time.time() % window + 0.05)  # the start of a fresh window
        statuses = asyncio.run(_burst(base, secret, 150))
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=30)
    assert 38 <= statuses.count(200) <= 40  # one limit of 40 for the fleet (within 5%), not 3 x 40
    assert statuses.count(429) == 150 - statuses.count(200)
    workers = {json.loads(line)["worker"] for line in log.splitlines() if line.startswith("{")}
    assert len(workers) >= 2  # the requests really were spread over worker processes


def test_sigterm_lets_in_flight_streams_finish(tmp_path: Path) -> None:
    slow = DeploymentServer("slow", "slow", delay=1.5)
    config = {"models": {"slow": {"model": "openai-like/m", "api_base": slow.url}}}
    try:
        with llmkit_serve(config, tmp_path) as (base, process):
            received: list[str] = []

            def stream() -> None:
                body = {"model": "slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
                with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=30) as reply:
                    received.extend(reply.iter_lines())

            client = threading.Thread(target=stream)
            client.start()
            time.sleep(0.5)  # the request is in flight, waiting for the slow upstream
            process.send_signal(signal.SIGTERM)
            client.join(30)
            assert process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
        assert "data: [DONE]" in received
        assert (
            "".join(
                json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                for line in received
                if line.startswith("data: {") and json.loads(line[6:])["choices"]
            )
            == "slow says hello"
        )
    finally:
        slow.stop()


def test_a_bad_config_is_one_line_before_the_port_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("models:\n  x: {model: nope/y}\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.startswith("llmkit: error:")
    assert "Traceback" not in result.stderr
    os.environ.pop("LLMKIT_GATEWAY_CONFIG", None)
