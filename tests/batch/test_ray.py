"""A batch job on Ray (extra ``ray``): the same records as on one machine, resume included, with the budget held by
one gate actor for every worker; and (slow) on a real two-node cluster started with ``ray start``, through the CLI,
with one rpm for every worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import llmkit.batch
from llmkit.batch.limits import rpm_window
from llmkit.providers.openai import OpenAILike
from llmkit.usage import clear_prices, set_price
from tests.batch.test_runner import _cli, _env, attempts, write_input
from tests.conftest import free_port
from tests.servers import fault
from tests.servers.fault import FaultServer

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed: pip install 'llmkit[ray]'")

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
CLUSTER_ENV = {
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}


@pytest.fixture
def ray_cluster() -> Iterator[None]:
    # Workers are new processes: they find llmkit (and this checkout) through PYTHONPATH.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=False)
    yield
    ray.shutdown()


def by_id(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_bytes().splitlines():
        record = json.loads(line)
        assert record["custom_id"] not in out, f"duplicate {record['custom_id']}"
        out[record["custom_id"]] = record
    return out


@pytest.fixture
def echo_priced() -> Iterator[None]:
    """A price set in the driver only: the Ray workers must price records with it as local mode does."""
    set_price("m", provider="openai_compatible", input=1, output=2)  # the model the fault server answers as
    yield
    clear_prices()


@pytest.mark.usefixtures("ray_cluster", "echo_priced")
def test_ray_run_writes_the_same_records_as_local_mode_and_resumes(fault_server: FaultServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", 300)
    with source.open("a") as extra:  # bad lines: not JSON, not a request, a repeated custom_id
        extra.write('{broken\n{"custom_id": "x", "prompt": 3}\n{"custom_id": "q7", "prompt": "again"}\n')
    llm = OpenAILike(model="echo", api_base=fault_server.url)
    local = llmkit.batch.run(source, tmp_path / "local.jsonl", llm, concurrency=8)
    assert local.succeeded == 300
    assert local.cost > 0
    assert local.failed == 3

    # A Ray run that resumes a crashed one: the first 100 records are there, the last one cut short.
    lines = (tmp_path / "local.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "ray.jsonl").write_bytes(b"".join(lines[:100]) + lines[100][:20])
    result = llmkit.batch.run(source, tmp_path / "ray.jsonl", llm, concurrency=8, ray=True, budget=100)
    assert result.skipped == 100
    assert (result.succeeded, result.failed) == (200, 3)
    assert result.complete
    assert by_id(tmp_path / "ray.jsonl") == by_id(tmp_path / "local.jsonl")
    assert by_id(tmp_path / "ray.jsonl")["line-303"]["error"]["type"] == "InputError"

    # The budget is the job's, whichever worker asks: 16 requests in flight over 2 workers, a budget of 10 requests.
    each = local.cost / 300
    stopped = llmkit.batch.run(source, tmp_path / "budget.jsonl", llm, concurrency=16, ray=True, budget=10 * each)
    assert (stopped.succeeded, stopped.cost) == (10, 10 * each)


def test_a_worker_returns_each_answer_when_it_is_done_not_with_its_slowest_neighbour() -> None:
    # The worker class without Ray: its loops take the lines handed over, and an exchange returns what is done.
    from llmkit.batch.ray import Worker
    from llmkit.batch.runner import EngineOptions
    from llmkit.providers.function import FunctionLLM

    release = threading.Event()

    def answer(messages: Any, kwargs: Any) -> str:
        if messages[-1].content == "slow":
            release.wait(30)
        return "ok"

    worker = Worker(FunctionLLM(chat_fn=answer), None, EngineOptions(), concurrency=4)
    lines: list[tuple[int, str | bytes]] = [(1, '{"custom_id": "s", "prompt": "slow"}'), (2, "{broken")]
    lines += [(n, json.dumps({"custom_id": f"q{n}", "prompt": "hi"})) for n in range(3, 9)]

    async def exchange() -> tuple[list[Any], list[Any]]:
        first: list[Any] = []
        while len(first) < 7:  # every line but the slow one, while it still runs
            first += await worker.exchange(lines if not first else [], 8)
        release.set()
        return first, await worker.exchange([], 8)

    first, last = asyncio.run(exchange())
    records = [json.loads(answer[0]) for answer in first]
    assert sorted(record["custom_id"] for record in records) == ["line-2", *(f"q{n}" for n in range(3, 9))]
    assert [(answer[1][0], json.loads(answer[0])["error"]["type"]) for answer in first if answer[1][0]] == [
        (True, "InputError")
    ]
    assert [json.loads(answer[0])["custom_id"] for answer in last] == ["s"]
    assert last[0][1] == (False, 0, None, True)  # the counts beside the line: ok, no tokens, no known cost


def _ray_start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # --block keeps each node's processes under one parent, so teardown ends exactly this cluster (not `ray stop`,
    # which would stop every Ray process on the machine)
    return subprocess.Popen(
        [RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
         "--disable-usage-stats", f"--dashboard-agent-listen-port={free_port()}", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _stop(nodes: list[subprocess.Popen[bytes]]) -> None:
    import psutil

    processes: list[psutil.Process] = []
    for node in nodes:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(node.pid)
            processes += [*parent.children(recursive=True), parent]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=15)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real two-node Ray cluster on this machine: `ray start --head` and a second `ray start --address` node, one
    CPU each (so a job's two workers land one per node); its address."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Workers find llmkit through PYTHONPATH; token auth off, so no ~/.ray token of this machine is involved.
    env = {**os.environ, **CLUSTER_ENV}
    temp_dir = tmp_path_factory.mktemp("ray")
    nodes = [_ray_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}"], env)]
    try:
        _wait(lambda: subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True)
              .returncode == 0, nodes, "the head node")  # fmt: skip
        nodes.append(_ray_start([f"--address={address}"], env))
        _wait(lambda: _alive_nodes(address, env) == 2, nodes, "the second node")
        yield address
    finally:
        _stop(nodes)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    status = subprocess.run([RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True)
    return status.stdout.count(" node_")


def _wait(ready: Callable[[], bool], nodes: list[subprocess.Popen[bytes]], what: str) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert all(node.poll() is None for node in nodes), f"{what} of the Ray cluster exited"
        assert time.monotonic() < deadline, f"{what} of the Ray cluster did not start in 120 s"
        time.sleep(0.5)


@pytest.mark.slow
def test_cli_on_a_two_node_ray_cluster_writes_the_same_records_as_local_mode(
    ray_address: str, fault_server: FaultServer, tmp_path: Path
) -> None:
    source = write_input(tmp_path / "in.jsonl", 400)
    with source.open("a") as extra:
        extra.write('{broken\n{"custom_id": "x", "prompt": 3}\n')
    common = ["--model", "openai-like/echo", "--api-base", fault_server.url, "--concurrency", "16"]
    local = subprocess.run(_cli(str(source), "-o", str(tmp_path / "local.jsonl"), *common), env=_env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert local.returncode == 0, local.stderr
    on_ray = subprocess.run(_cli(str(source), "-o", str(tmp_path / "ray.jsonl"), *common, "--ray", ray_address),
                            env={**_env(), **CLUSTER_ENV}, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr
    assert "400 succeeded, 2 failed" in on_ray.stderr
    assert by_id(tmp_path / "ray.jsonl") == by_id(tmp_path / "local.jsonl")
    assert by_id(tmp_path / "ray.jsonl")["line-401"]["error"]["type"] == "InputError"


@pytest.mark.slow
def test_one_rpm_holds_across_the_workers_of_a_two_node_cluster(ray_address: str, tmp_path: Path) -> None:
    rpm, count = 600, 60
    per_window, window = rpm_window(rpm)
    server = fault.start()  # its own server: the CLI's requests are the only ones it counts
    try:
        source = write_input(tmp_path / "in.jsonl", count)
        args = ["-o", str(tmp_path / "out.jsonl"), "--model", "openai-like/echo", "--api-base", server.url]
        finished = subprocess.run(
            _cli(str(source), *args, "--concurrency", "16", "--rpm", str(rpm), "--ray", ray_address),
            env={**_env(), **CLUSTER_ENV}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert finished.returncode == 0, finished.stderr
        assert f"{count} succeeded" in finished.stderr
        times = sorted(attempts(server, "default"))
    finally:
        server.shutdown()
    assert len(times) == count
    # One job's fixed windows of per_window requests (limits per worker would let twice as many through): a span of
    # L seconds holds at most per_window * (ceil(L / window) + 1). The slack in the 1 s spans is the hop from the
    # gate actor's decision to the request reaching the server, longer and less even than in one process.
    spread = str([round(t - times[0], 3) for t in times])
    for i, start in enumerate(times):
        inside = sum(1 for t in times[i:] if t - start <= 1.0)
        assert inside <= 2 * per_window + per_window // 2, spread
    elapsed = times[-1] - times[0]
    assert count <= per_window * (math.ceil(elapsed / window) + 1), spread
    assert elapsed >= (math.ceil(count / per_window) - 2) * window - 0.1, spread  # the windows between first and last
