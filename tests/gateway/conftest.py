"""The gateway served for real: uvicorn on 127.0.0.1 in a thread of the test process (or ``llmkit serve`` in
subprocesses for the fleet tests)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

SKIP_REASON = "the gateway needs the 'server' extra: pip install 'llmkit[server]'"
for _module in ("starlette", "uvicorn", "prometheus_client"):
    pytest.importorskip(_module, reason=SKIP_REASON)

from tests.conftest import free_port  # noqa: E402  (after the skips: they name the extra)

MASTER = "sk-master-test-0123456789"


@contextmanager
def serving(config: Mapping[str, Any]) -> Iterator[str]:
    """Serve a gateway for ``config``; yields its base URL (``http://127.0.0.1:PORT``)."""
    import uvicorn

    from llmkit.gateway.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def admin(base: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, base + path, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10, **kwargs)
